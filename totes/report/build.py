"""`totes report`: execute the dashboard notebook against the warehouse, export it as HTML.

Steps: check the warehouse answers (a clear error, not a traceback, when it does not) → get
the analyses' SQL (given folder, or compiled now, see `analyses.py`) → run `dashboard.ipynb` in
a fresh kernel (nbclient) with the environment pointing at the warehouse and the output folder →
write `report.html` (self-contained: code hidden, charts embedded, no external scripts), the
executed notebook, the PNG charts and their CSV data.

Output layout (`--out`, default `reports/` in the current directory):

    report.html  dashboard.ipynb  report.json  charts/*.png  data/*.csv  sql/*.sql
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime import db
from runtime.config import ConfigError, Settings
from totes.dbt_build import DbtBuildError
from totes.report import analyses
from totes.report.dash import REPORT_FILE

NOTEBOOK = Path(__file__).with_name("dashboard.ipynb")
TEMPLATE_DIR = Path(__file__).with_name("templates")
TITLE = "Terrific Totes — sales dashboard"


class ReportError(RuntimeError):
    """The report could not be produced; the message says why and what to do."""


class WarehouseUnavailable(ReportError):
    """No warehouse configured, or it did not accept a connection."""


@dataclass
class ReportResult:
    out_dir: Path
    html: Path
    notebook: Path
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.summary.get("status"))

    @property
    def charts(self) -> list[Path]:
        return [Path(c["png"]) for c in self.summary.get("charts", []) if c.get("png")]

    @property
    def data_files(self) -> list[Path]:
        return [Path(c["data"]) for c in self.summary.get("charts", []) if c.get("data")]

    @property
    def failed(self) -> list[str]:
        return [c["name"] for c in self.summary.get("charts", []) if c.get("state") == "error"]


def build_report(
    settings: Settings,
    out_dir: Path,
    *,
    sql_dir: Path | None = None,
    project_dir: Path = analyses.PROJECT_DIR,
    timeout_s: int = 300,
    use_dbt: bool = False,
) -> ReportResult:
    """Produce the report in `out_dir`; raises ReportError (clear message) when it cannot."""
    out_dir = out_dir.resolve()
    _check_warehouse(settings)
    warnings: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous(out_dir)
    if sql_dir is None:
        sql_dir = out_dir / "sql"
        with tempfile.TemporaryDirectory(prefix="totes-report-") as work:
            try:
                found, notes = analyses.prepare(
                    settings, sql_dir, Path(work), project_dir=project_dir, use_dbt=use_dbt
                )
            except (analyses.AnalysisError, DbtBuildError) as err:
                raise ReportError(str(err)) from None
        warnings += notes
        if not found:
            warnings.append(f"no analyses in {project_dir / 'analyses'}: nothing to chart")
    elif not sql_dir.is_dir():
        raise ReportError(f"--sql-dir {sql_dir} is not a folder of compiled analyses")

    notebook = _execute(settings, out_dir, sql_dir.resolve(), timeout_s)
    executed = out_dir / "dashboard.ipynb"
    import nbformat

    nbformat.write(notebook, executed)
    html = out_dir / "report.html"
    html.write_text(export_html(notebook), encoding="utf-8")
    summary = json.loads((out_dir / REPORT_FILE).read_text())
    warnings += summary.get("warnings", [])
    return ReportResult(out_dir, html, executed, summary, warnings)


def export_html(notebook: Any) -> str:
    """Self-contained HTML: inputs hidden, images inline, no MathJax or other CDN scripts."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        template_name="totes",
        extra_template_basedirs=[str(TEMPLATE_DIR)],
    )
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": TITLE}})
    return body


def _check_warehouse(settings: Settings) -> None:
    try:
        conn = settings.warehouse_connection(application_name="totes-report", timeout=10)
    except (db.DatabaseUnavailableError, db.ConnectionConfigError) as err:
        raise WarehouseUnavailable(f"the warehouse is unreachable: {err}") from None
    except ConfigError as err:  # no warehouse configured at all
        raise WarehouseUnavailable(str(err)) from None
    conn.close()


def _execute(settings: Settings, out_dir: Path, sql_dir: Path, timeout_s: int) -> Any:
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    env = {
        **os.environ,
        "TOTES_REPORT_OUT": str(out_dir),
        "TOTES_REPORT_SQL_DIR": str(sql_dir),
        "MPLBACKEND": "Agg",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    if settings.warehouse_dsn:
        env["WAREHOUSE_DSN"] = settings.warehouse_dsn
    elif settings.warehouse_secret_arn:
        env["WAREHOUSE_SECRET_ARN"] = settings.warehouse_secret_arn
    with tempfile.TemporaryDirectory(prefix="totes-kernel-") as sockets:
        # The kernel talks over unix sockets in a private folder: no TCP port, not even loopback.
        manager = KernelManager(kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel")
        client = NotebookClient(
            notebook,
            km=manager,
            timeout=timeout_s,
            resources={"metadata": {"path": str(out_dir)}},
        )
        try:
            client.execute(env=env)
        except CellExecutionError as err:
            raise ReportError(f"the dashboard notebook failed: {_short(err)}") from None
    return notebook


def _clear_previous(out_dir: Path) -> None:
    """A report folder holds one report: stale charts from a previous run would mislead."""
    for sub in ("charts", "data", "sql"):
        for path in (out_dir / sub).glob("*") if (out_dir / sub).is_dir() else ():
            if path.suffix in (".png", ".csv", ".sql"):
                path.unlink()
    for name in ("report.html", "dashboard.ipynb", REPORT_FILE):
        (out_dir / name).unlink(missing_ok=True)


def _short(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return " | ".join(lines[-3:])[:600]
