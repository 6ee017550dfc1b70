"""What the dashboard notebook leans on: the warehouse's state, running one analysis into a
DataFrame, readable numbers, and saving each chart with the data behind it.

The notebook (`dashboard.ipynb`) keeps the questions and the drawing; this module keeps the
plumbing, so a cell reads as "ask, answer in one line, draw". Everything the notebook produces
lands in the output folder:

    <out>/charts/<question>.png     one chart per question
    <out>/data/<question>.csv       the numbers drawn in that chart, exactly
    <out>/report.json               status, warnings, and per question: title, headline, files

Configuration comes from the environment, read once in `Dashboard.from_env()` (the notebook is an
entry point like the CLI): `WAREHOUSE_DSN` (or `WAREHOUSE_SECRET_ARN`), `TOTES_REPORT_SQL_DIR`
(compiled analyses), `TOTES_REPORT_OUT` (output folder).
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from publish import marts
from runtime import db

MARTS_SCHEMA = "marts"
MART_TABLES = marts.TABLES
FACT_TABLES = tuple(marts.FACTS)
UNDEFINED_TABLE = "42P01"
REPORT_FILE = "report.json"


@dataclass
class WarehouseState:
    """How far the marts are built: decides whether the report can draw anything."""

    marts_schema: bool
    missing: list[str]
    fact_rows: dict[str, int]
    latest_sale: str | None = None

    @property
    def status(self) -> str:
        if not self.marts_schema:
            return "no_marts"
        if self.missing:
            return "incomplete"
        if not any(self.fact_rows.values()):
            return "empty"
        return "ok"

    @property
    def message(self) -> str:
        return {
            "no_marts": "The warehouse has no `marts` schema yet: no pipeline cycle has built it. "
            "Run `totes run` (after `totes seed` locally), then `totes report` again.",
            "incomplete": "The marts are only partly built (missing: "
            + ", ".join(self.missing)
            + "). Run `totes run` to finish the build, then `totes report` again.",
            "empty": "The marts exist but every fact table is empty: nothing has been loaded "
            "yet. Run `totes run` after the source has data, then `totes report` again.",
            "ok": "",
        }[self.status]


@dataclass
class Chart:
    name: str
    title: str
    state: str = "pending"  # drawn | empty | missing_analysis | not_loaded | error | skipped
    headline: str = ""
    note: str = ""
    rows: int = 0
    png: str | None = None
    data: str | None = None


@dataclass
class Dashboard:
    dsn: str | None
    sql_dir: Path
    out_dir: Path
    charts: dict[str, Chart] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _conn: Any = None
    _state: WarehouseState | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Dashboard:
        env = os.environ if environ is None else environ
        out = Path(env.get("TOTES_REPORT_OUT") or "reports").resolve()
        sql = Path(env.get("TOTES_REPORT_SQL_DIR") or out / "sql").resolve()
        dsn = env.get("WAREHOUSE_DSN") or None
        if not dsn and env.get("WAREHOUSE_SECRET_ARN"):
            import boto3

            client = boto3.client(
                "secretsmanager",
                region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
                endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            )
            params = db.read_secret(env["WAREHOUSE_SECRET_ARN"], client)
            return cls(None, sql, out, _conn=db.connect(params, application_name="totes-report"))
        if not dsn:
            raise db.ConnectionConfigError('set WAREHOUSE_DSN (locally: eval "$(totes env)")')
        return cls(dsn, sql, out)

    # --- the warehouse ---------------------------------------------------------------------

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = db.connect(self.dsn or "", application_name="totes-report")
        return self._conn

    def where(self) -> str:
        return db.parse_dsn(self.dsn).describe() if self.dsn else "the warehouse (secret)"

    def state(self) -> WarehouseState:
        if self._state is None:
            self._state = self._read_state()
        return self._state

    def _read_state(self) -> WarehouseState:
        present = {
            row[0]
            for row in self.conn.run(
                "select table_name from information_schema.tables where table_schema = :schema",
                schema=MARTS_SCHEMA,
            )
        }
        has_schema = bool(
            self.conn.run(
                "select 1 from information_schema.schemata where schema_name = :schema",
                schema=MARTS_SCHEMA,
            )
        )
        missing = [t for t in MART_TABLES if t not in present]
        rows = {}
        for fact in FACT_TABLES:
            if fact in present:
                rows[fact] = self.conn.run(
                    f"select count(*) from {db.qualified(MARTS_SCHEMA, fact)}"  # noqa: S608
                )[0][0]
        latest = None
        if rows.get("fact_sales_order"):
            stamp = self.conn.run(
                "select max(last_updated_date + last_updated_time) from "  # noqa: S608
                + db.qualified(MARTS_SCHEMA, "fact_sales_order")
            )[0][0]
            latest = f"{stamp:%Y-%m-%d %H:%M}" if stamp else None
        return WarehouseState(has_schema, missing, rows, latest)

    @property
    def ready(self) -> bool:
        return self.state().status == "ok"

    def ask(self, name: str, title: str) -> pd.DataFrame | None:
        """Run analysis `name` and return its rows, or None (after saying why) when there are
        none to draw: warehouse not built, analysis missing, query failed, no rows."""
        chart = self.charts.setdefault(name, Chart(name, title))
        chart.title = title
        if not self.ready:
            return self._skip(chart, "skipped", "Not drawn: " + self.state().message)
        sql_file = self.sql_dir / f"{name}.sql"
        if not sql_file.exists():
            return self._skip(
                chart,
                "missing_analysis",
                f"Not drawn: the analysis `{name}.sql` is not in `dbt_warehouse/analyses/`.",
            )
        try:
            frame = query(self.conn, sql_file.read_text())
        except Exception as err:  # the database's message is the useful part
            code = _sqlstate(err)
            state = "not_loaded" if code == UNDEFINED_TABLE else "error"
            return self._skip(chart, state, f"Not drawn: `{name}.sql` failed: {_first(err)}")
        chart.rows = len(frame)
        if frame.empty:
            return self._skip(chart, "empty", "No rows yet for this question.")
        return frame

    def _skip(self, chart: Chart, state: str, note: str) -> None:
        chart.state, chart.note = state, note
        if state in ("error", "not_loaded", "missing_analysis"):
            self.warnings.append(f"{chart.name}: {note}")
        _markdown(f"> ⚠️ {note}")
        return None

    # --- answering and drawing -------------------------------------------------------------

    def headline(self, name: str, text: str) -> None:
        """The one-line answer shown above the chart (and kept in report.json)."""
        self.charts[name].headline = text
        _markdown(f"**{text}**")

    def save(self, name: str, fig: Any, data: pd.DataFrame) -> None:
        """Save the chart as PNG and the numbers behind it as CSV, show it, close it."""
        charts, data_dir = self.out_dir / "charts", self.out_dir / "data"
        charts.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        png, csv = charts / f"{name}.png", data_dir / f"{name}.csv"
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        png.write_bytes(buffer.getvalue())
        data.to_csv(csv, index=False)
        chart = self.charts[name]
        chart.state, chart.png, chart.data = "drawn", str(png), str(csv)
        import matplotlib.pyplot as plt
        from IPython.display import Image, display

        plt.close(fig)
        display(Image(data=buffer.getvalue(), format="png"))

    def finish(self) -> dict[str, Any]:
        """Write report.json: what the CLI prints and the tests read."""
        state = self.state()
        summary = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "warehouse": self.where(),
            "status": state.status,
            "message": state.message,
            "fact_rows": state.fact_rows,
            "latest_sale": state.latest_sale,
            "warnings": self.warnings,
            "charts": [asdict(c) for c in self.charts.values()],
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / REPORT_FILE).write_text(json.dumps(summary, indent=2, default=str))
        return summary

    def footer(self) -> None:
        """Where each chart's picture and numbers are, relative to the report."""
        drawn = [c for c in self.charts.values() if c.png and c.data]
        if not drawn:
            return
        lines = ["## Files", "", "| question | chart | data |", "|---|---|---|"]
        for chart in drawn:
            png, csv = Path(chart.png or ""), Path(chart.data or "")
            links = f"[{png.name}](charts/{png.name}) | [{csv.name}](data/{csv.name})"
            lines.append(f"| {chart.title} | {links} |")
        _markdown("\n".join(lines))

    def banner(self) -> None:
        """The report's first lines: where the data comes from, and whether it is usable."""
        state = self.state()
        now = datetime.now(UTC)
        lines = [f"Generated {now:%Y-%m-%d %H:%M} UTC from `{self.where()}`."]
        if state.latest_sale:
            lines.append(f"Latest sales order change in the warehouse: {state.latest_sale} UTC.")
        if state.fact_rows:
            lines.append(
                "Fact rows (every version): "
                + ", ".join(f"{t} {n:,}" for t, n in state.fact_rows.items())
                + "."
            )
        _markdown(" ".join(lines))
        if state.message:
            _markdown(f"> ⚠️ **No data to report.** {state.message}")


def query(conn: Any, sql: str) -> pd.DataFrame:
    """Rows of `sql` as a DataFrame: numerics as floats, dates as datetimes, columns named."""
    rows = conn.run(sql)
    names = [c["name"] for c in conn.columns or []]
    frame = pd.DataFrame(rows, columns=names)
    for column in frame.columns:
        sample = frame[column].dropna()
        if sample.empty:
            continue
        first = sample.iloc[0]
        if isinstance(first, Decimal):
            frame[column] = frame[column].astype(float)
        elif isinstance(first, (date, datetime)):
            frame[column] = pd.to_datetime(frame[column])
    return frame


# --- readable numbers ----------------------------------------------------------------------


def compact(value: float, unit: str = "") -> str:
    """1234567 -> '1.2 M', 12345 -> '12.3 k', 950 -> '950' (with an optional unit after)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    magnitude = abs(value)
    for limit, suffix in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
        if magnitude >= limit:
            text = f"{value / limit:,.1f}{suffix}"
            break
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}".rstrip()


def money(value: float, currency: str) -> str:
    """'GBP 1.2 M': a currency code in front of a compact amount."""
    return f"{currency} {compact(value)}"


def thousands(axis: Any, prefix: str = "") -> None:
    """Tick labels with thousands separators (and an optional currency code)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{prefix}{x:,.0f}"))


def months(axis: Any) -> None:
    """Date tick labels as 'Jan 2025'."""
    import matplotlib.dates as mdates

    axis.set_major_formatter(mdates.DateFormatter("%b %Y"))


def join(parts: Sequence[str]) -> str:
    return " · ".join(parts)


def amounts(frame: pd.DataFrame, value: str, currency: str = "currency_code") -> str:
    """'GBP 1.2 M · USD 980.1 k': one amount per currency, largest first (never summed across)."""
    totals = frame.groupby(currency)[value].sum().sort_values(ascending=False)
    return join([money(amount, code) for code, amount in totals.items()])


def _markdown(text: str) -> None:
    try:
        from IPython.display import Markdown, display

        display(Markdown(text))
    except ImportError:  # outside IPython (a plain script): print instead
        print(text)


def _sqlstate(err: Exception) -> str | None:
    detail = err.args[0] if err.args else None
    return detail.get("C") if isinstance(detail, dict) else None


def _first(err: Exception) -> str:
    detail = err.args[0] if err.args else err
    if isinstance(detail, dict):
        return str(detail.get("M", detail))
    return str(detail).splitlines()[0][:300]
