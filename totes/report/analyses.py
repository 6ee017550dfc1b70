"""The business questions' SQL: the dbt project's `analyses/`, turned into runnable SQL.

dbt analyses use `ref()`, so they must be compiled before a plain client can run them. Two ways:

1. `dbt compile --select resource_type:analysis` into a private target path: authoritative (the
   project's own `generate_schema_name`, vars and macros apply). Needs the dbt executable and the
   warehouse profile variables, which are derived from the same `Settings` as everything else.
2. A small renderer for analyses that use nothing but `{{ ref('model') }}`: each ref becomes
   `"<schema>"."model"` (the marts schema by default). Used when dbt is not installed or cannot
   compile (for example in a notebook opened by hand); anything else in `{{ }}` / `{% %}` is
   refused with a message naming the file, never guessed at.

Direct rendering is tried first (fast, no dbt needed); `dbt compile` is used when an analysis
needs more than `ref()`, or when asked for. Either way the result is a folder of `<name>.sql`
files, one per analysis.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from runtime.config import Settings
from totes import dbt_build

PROJECT_DIR = dbt_build.PROJECT_DIR
PROJECT_NAME = "totes_warehouse"
MARTS_SCHEMA = "marts"

_REF = re.compile(r"""\{\{\s*ref\(\s*(['"])(?P<name>[A-Za-z0-9_]+)\1\s*\)\s*\}\}""")
_JINJA = re.compile(r"\{\{|\{%|\{#")


class AnalysisError(RuntimeError):
    """The analyses could not be turned into runnable SQL."""


def analysis_files(project_dir: Path = PROJECT_DIR) -> dict[str, Path]:
    """`{name: path}` of every `.sql` in the project's `analyses/` folder (recursively)."""
    folder = project_dir / "analyses"
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.rglob("*.sql"))}


def compile_with_dbt(
    settings: Settings,
    dest: Path,
    work_dir: Path,
    *,
    project_dir: Path = PROJECT_DIR,
    runner: dbt_build.DbtRunner = dbt_build.subprocess_runner,
) -> dict[str, Path]:
    """`dbt compile` the analyses into `work_dir`, then copy the compiled SQL into `dest`."""
    if not analysis_files(project_dir):
        return {}
    target, logs = work_dir / "target", work_dir / "logs"
    args = [
        "compile", "--select", "resource_type:analysis",
        "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
        "--target-path", str(target), "--log-path", str(logs),
    ]  # fmt: skip
    code = runner(args, dbt_build.dbt_env(settings), logs / "compile.out")
    if code != 0:
        raise AnalysisError(
            f"dbt compile of the analyses failed (exit {code}): "
            f"{dbt_build._tail(logs / 'compile.out', 8)}"
        )
    compiled = target / "compiled" / PROJECT_NAME / "analyses"
    dest.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    for path in sorted(compiled.rglob("*.sql")):
        found[path.stem] = Path(shutil.copyfile(path, dest / path.name))
    return found


def render_refs(
    dest: Path, *, project_dir: Path = PROJECT_DIR, schema: str = MARTS_SCHEMA
) -> dict[str, Path]:
    """Render analyses that use only `{{ ref('...') }}` into `dest` (see the module docstring)."""
    dest.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    for name, path in analysis_files(project_dir).items():
        found[name] = dest / path.name
        found[name].write_text(render_text(path.read_text(), schema=schema, source=path.name))
    return found


def render_text(sql: str, *, schema: str = MARTS_SCHEMA, source: str = "<sql>") -> str:
    rendered = _REF.sub(lambda m: f'"{schema}"."{m.group("name")}"', sql)
    if _JINJA.search(rendered):
        raise AnalysisError(
            f"{source} uses Jinja beyond ref(); compile it with dbt (`dbt compile`) instead"
        )
    return rendered


def prepare(
    settings: Settings,
    dest: Path,
    work_dir: Path,
    *,
    project_dir: Path = PROJECT_DIR,
    runner: dbt_build.DbtRunner = dbt_build.subprocess_runner,
    use_dbt: bool = False,
) -> tuple[dict[str, Path], list[str]]:
    """Runnable SQL for every analysis in `dest`, and any warnings about how it was obtained.

    Analyses that use only `ref()` are rendered directly (the marts schema is a contract, and
    this takes milliseconds where `dbt compile` parses the whole project); anything else, or
    `use_dbt`, goes through `dbt compile`.
    """
    if not use_dbt:
        try:
            return render_refs(dest, project_dir=project_dir), []
        except AnalysisError:
            pass  # an analysis needs real Jinja: let dbt compile them all
    return compile_with_dbt(settings, dest, work_dir, project_dir=project_dir, runner=runner), []
