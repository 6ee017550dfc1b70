"""What `totes` shows a person: every result the commands print, and nothing else.

Each function takes a result the pipeline already produced and writes it. Progress, summaries,
errors and the cycle's table go to stderr; `totes env`'s export lines, `totes load`'s JSON,
simulate's changes, the status tables and the report's paths go to stdout, beside the JSON log
lines. No function here does work or decides an exit code.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the results' types only: their modules pull in pyarrow and faker
    from infra.local.totesys.seed import SeedReport
    from infra.local.totesys.simulate import SimulationResult
    from ingest.extract import ExtractResult
    from lambda_loader.failures import Failure
    from lambda_loader.result import LoadResult
    from totes.cycle import CycleResult
    from totes.report.build import ReportResult
    from totes.status import StatusReport
    from verify.verify import VerifyResult


def error(command: str, message: object) -> None:
    """An expected failure: one line naming the command, on stderr."""
    print(f"totes {command}: {message}", file=sys.stderr)


# ---- the local stack ---------------------------------------------------------------------------


def stack_up(env: Mapping[str, str]) -> None:
    print(f"local stack up in {env['TOTES_HOME']}", file=sys.stderr)
    print(f"  totesys:   {env['TOTESYS_DSN']}", file=sys.stderr)
    print(f"  warehouse: {env['WAREHOUSE_DSN']}", file=sys.stderr)
    print(f"  AWS (S3, SNS, Glue): {env['AWS_ENDPOINT_URL']}", file=sys.stderr)
    print('  eval "$(totes env)" to use them from this shell', file=sys.stderr)


def stack_down(purge: bool) -> None:
    print("local stack stopped" + (" and its data deleted" if purge else ""), file=sys.stderr)


def env_exports(env: Mapping[str, str]) -> None:
    """Shell export lines on stdout, for `eval "$(totes env)"`."""
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    print(f'export PATH={shlex.quote(env["PG_BIN"])}:"$PATH"')


# ---- the totesys stand-in ----------------------------------------------------------------------


def seed_progress() -> Callable[[str, int, int], None]:
    """One line per table on stderr as each finishes (a log-friendly progress display)."""
    started = time.perf_counter()
    finished: set[str] = set()

    def show(table: str, done: int, total: int) -> None:
        if done == total and table not in finished:
            finished.add(table)
            elapsed = time.perf_counter() - started
            print(f"  {table:<15} {total:>12,} rows  {elapsed:7.1f} s", file=sys.stderr)

    return show


def seeded(report: SeedReport) -> None:
    if report.skipped:
        print("totesys already holds data: left as it is (--if-empty)", file=sys.stderr)
        return
    rows = sum(t.rows for t in report.tables)
    print(
        f"seeded totesys: {rows:,} rows (scale {report.scale:g}, seed {report.seed}, "
        f"up to {report.end.isoformat()}) in {report.total_s:.1f} s",
        file=sys.stderr,
    )


def simulated(result: SimulationResult) -> None:
    for line in result.describe():
        print(line)


# ---- extract and load --------------------------------------------------------------------------


def extracted(result: ExtractResult) -> None:
    state = "committed" if result.committed else "NOT committed (another run won this seq)"
    print(f"extract run {result.run_id}: manifest {result.seq} {state}", file=sys.stderr)
    print(
        f"  {'table':<16} {'rows':>10} {'deleted':>8} {'files':>6} {'bytes':>12}  watermark",
        file=sys.stderr,
    )
    for t in result.tables:
        print(
            f"  {t.table:<16} {t.rows:>10,} {t.deleted:>8,} {t.files:>6} {t.bytes:>12,}"
            f"  {t.low} → {t.high}",
            file=sys.stderr,
        )
    print(
        f"  {result.rows:,} rows, {result.deleted:,} deleted, in {result.duration_s:.1f} s",
        file=sys.stderr,
    )


def loaded(result: LoadResult) -> None:
    """The summary on stderr, the result as one JSON line on stdout."""
    rows = sum(result.rows.values())
    print(f"loaded {len(result.loaded)} manifest(s), {rows} row(s)", file=sys.stderr)
    print(json.dumps(result.as_dict()))


def skipped(seq: int, key: str, reason: str) -> None:
    print(f"skipped manifest {seq} ({key}): {reason}", file=sys.stderr)


def load_blocked(seq: int) -> None:
    """After a LoadFailed: the three ways on."""
    print(
        f"  inspect: totes load --failures; after fixing the file: totes load; "
        f"or: totes load --skip {seq} --reason TEXT",
        file=sys.stderr,
    )


def load_failures(found: list[Failure]) -> None:
    if not found:
        print("no load failures", file=sys.stderr)
        return
    for failure in found:
        state = f"resolved ({failure.resolution})" if failure.resolved else "OPEN"
        print(
            f"seq {failure.seq}  {state}  attempts={failure.attempts}  "
            f"last={failure.failed_at:%Y-%m-%d %H:%M:%S}  file={failure.file or '-'}"
        )
        print(f"    {failure.error}")


# ---- the cycle ---------------------------------------------------------------------------------


def cycle_table(result: CycleResult) -> None:
    """One cycle's steps as a table on stderr, then its outcome."""
    if result.skipped:
        print(
            f"another cycle is running: run {result.run_id} did nothing "
            "(the running cycle and the next one cover the same rows)",
            file=sys.stderr,
        )
        return
    table = Table(title=f"run {result.run_id}", title_justify="left")
    for column in ("step", "status", "rows", "files", "models", "tests", "seconds", "error"):
        table.add_column(column, justify="right" if column in {"rows", "files"} else "left")
    for o in result.steps:
        style = {"failed": "red", "not run": "dim"}.get(o.status, "green")
        # A dbt step that found nothing changed since a build built nothing (totes/cycle.py).
        label = "unchanged" if (o.detail or {}).get("unchanged_since") else o.status
        table.add_row(
            o.step,
            f"[{style}]{label}[/]",
            *(_num(v) for v in (o.rows, o.files, o.models, o.tests)),
            f"{o.duration_s:.1f}",
            (o.error or "")[:200],
        )
    console = Console(stderr=True)
    console.print(table)
    console.print(
        f"[green]ok[/] in {result.duration_s:.1f}s"
        if result.ok
        else f"[red]failed at {result.failed_step}[/]: {result.error}"
    )


def full_tests(tests: int, warnings: int) -> None:
    print(f"full tests passed: {tests} tests over every row, {warnings} warning(s)")


def cycle_line(result: CycleResult) -> None:
    """One line per cycle, for `totes run --every`."""
    print(result.describe(), file=sys.stderr, flush=True)


def stopped() -> None:
    print("stopped", file=sys.stderr)


# ---- verify ------------------------------------------------------------------------------------


def verify_table(result: VerifyResult, console: Any = None, *, stderr: bool = False) -> None:
    """Every table checked, what differs with example keys, then the verdict: on stdout for
    `totes verify`, on stderr beside the cycle's table for `totes run --verify`."""
    from verify.verify import KIND_LABELS, KINDS

    console = console or Console(stderr=stderr)
    table = Table(title=f"verify {result.run_id}: totesys against the marts", title_justify="left")
    table.add_column("source table")
    table.add_column("mart")
    table.add_column("rows (totesys / marts)", justify="right")
    table.add_column("drift (example keys)")
    table.add_column("in flight", justify="right")
    for t in result.tables:
        at_least = "at least " if t.truncated else ""
        drift = "; ".join(
            f"{at_least}{t.counts[k]:,} {KIND_LABELS[k]}"
            + (f": {', '.join(str(key) for key in t.examples[k])}" if t.examples.get(k) else "")
            for k in KINDS
            if t.counts.get(k)
        )
        same = t.source_rows == t.mart_rows
        table.add_row(
            f"[{'green' if t.ok else 'red'}]{t.table}[/]",
            t.mart,
            f"{t.source_rows:,}" if same else f"[red]{t.source_rows:,} / {t.mart_rows:,}[/]",
            f"[red]{t.problem or drift}[/]" if not t.ok else "[green]ok[/]",
            _num(t.in_flight) if t.in_flight else "",
        )
    console.print(table)
    if result.ok:
        console.print(f"[green]{result.describe()}[/]")
        return
    console.print(f"[red]DRIFT in {len(result.drifting)} table(s)[/] (verify {result.run_id})")


def verify_line(result: VerifyResult) -> None:
    """One line per verification, for `totes run --every --verify`."""
    print(result.describe(), file=sys.stderr, flush=True)


def verify_json(result: VerifyResult) -> None:
    print(json.dumps(result.as_dict(), default=str))


def verify_skipped(cycle: CycleResult) -> None:
    why = (
        "another cycle is running" if cycle.skipped else f"the cycle failed at {cycle.failed_step}"
    )
    print(f"not verified: {why}", file=sys.stderr)


# ---- status ------------------------------------------------------------------------------------


def render_status(report: StatusReport, console: Any = None) -> None:
    """The status as rich tables (default: on stdout)."""
    console = console or Console()
    if report.stack is not None:
        pg, s3 = report.stack["postgres"], report.stack["s3"]
        console.print(
            f"local stack {report.stack['home']}: postgres {_running(pg['running'])}, "
            f"AWS endpoint {_running(s3['running'])} {s3.get('endpoint') or ''}"
        )
    sources = Table(title="source tables", title_justify="left")
    for column in ("table", "committed (seq · watermark)", "loaded (seq · watermark)", "raw rows",
                   "deleted", "last load", "lag"):  # fmt: skip
        sources.add_column(column, justify="right" if column in ("raw rows", "deleted") else "left")
    for s in report.sources:
        lag = s.lag(report.now)
        sources.add_row(
            s.table,
            _pair(s.committed_seq, s.committed_watermark),
            _pair(s.loaded_seq, s.loaded_watermark),
            _num(s.raw_rows),
            _num(s.deleted),
            f"{s.last_loaded_at:%Y-%m-%d %H:%M:%S}" if s.last_loaded_at else "",
            _lag(lag),
        )
    console.print(sources)
    _unmodelled_columns(report, console)
    marts = Table(title="marts", title_justify="left")
    for column in ("table", "rows", "newest key", "published through"):
        marts.add_column(column, justify="left" if column == "table" else "right")
    for m in report.marts:
        marts.add_row(m.table, _num(m.rows), _num(m.newest_key), _num(m.published_through))
    console.print(marts)
    runs = Table(title="last runs", title_justify="left")
    for column in ("run id", "started", "seconds", "outcome", "steps"):
        runs.add_column(column)
    for r in report.runs:
        seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
        outcome = {
            "succeeded": "[green]succeeded[/]",
            "running": "[yellow]running[/]",
            "abandoned": "[yellow]abandoned[/] (its process died mid-cycle)",
        }.get(r.status, f"[red]failed at {r.failed_step}[/]: {(r.error or '')[:120]}")
        runs.add_row(
            r.run_id,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            "" if seconds is None else f"{seconds:.1f}",
            outcome,
            " · ".join(_step(s) for s in r.steps if s.get("status") == "succeeded"),
        )
    console.print(runs)
    for problem in report.problems:
        console.print(f"[red]cannot read {problem}[/]")


# ---- the report --------------------------------------------------------------------------------


def _unmodelled_columns(report: StatusReport, console: Any) -> None:
    """Source columns raw carries but no staging model selects yet (added in the source)."""
    for s in report.sources:
        if s.unmodelled:
            console.print(
                f"[yellow]new source columns in raw.{s.table}, not in its staging model:[/] "
                + ", ".join(s.unmodelled)
            )


def report_written(result: ReportResult) -> None:
    """Warnings on stderr, then each file written on stdout."""
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.status != "ok":
        print(f"warning: {result.summary.get('message')}", file=sys.stderr)
    print(f"report: {result.html}")
    print(f"notebook: {result.notebook}")
    for path in result.charts:
        print(f"chart: {path}")
    for path in result.data_files:
        print(f"data: {path}")


# ---- formatting --------------------------------------------------------------------------------


def _running(flag: bool) -> str:
    return "[green]running[/]" if flag else "[red]stopped[/]"


def _pair(seq: int | None, mark: str | None) -> str:
    return "" if seq is None else f"{seq} · {mark or '—'}"


def _num(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _lag(lag: timedelta | None) -> str:
    if lag is None:
        return ""
    minutes = lag.total_seconds() / 60
    text = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
    style = "green" if minutes < 15 else "yellow" if minutes < 30 else "red"
    return f"[{style}]{text}[/]"


def _step(step: dict[str, Any]) -> str:
    counts = [f"{step[k]} {k}" for k in ("rows", "models", "tests") if step.get(k) is not None]
    return f"{step['step']} {'/'.join(counts)}".strip()
