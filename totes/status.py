"""`totes status`: where the pipeline stands, read from the lake, the warehouse and the stack.

Per source table: the watermark of the newest committed manifest in the ingestion bucket, the
newest manifest loaded into `raw`, the rows in `raw`, and the freshness lag (now minus the
table's last load, the same measure dbt source freshness uses). Per mart: its rows and, for
facts, how far the lake copy is published. Then the last cycles from `ops.cycle_runs` and, when
`TOTES_HOME` holds a local stack, whether its PostgreSQL and AWS endpoint are running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pg8000.native

from publish import publish
from runtime.config import Settings
from runtime.db import qualified, quote_ident
from totes import ops

MANIFESTS = "_manifests/"


@dataclass(frozen=True)
class SourceStatus:
    table: str
    committed_seq: int | None = None
    committed_watermark: str | None = None
    loaded_seq: int | None = None
    loaded_watermark: str | None = None
    raw_rows: int | None = None
    last_loaded_at: datetime | None = None

    def lag(self, now: datetime) -> timedelta | None:
        return now - self.last_loaded_at if self.last_loaded_at else None


@dataclass(frozen=True)
class MartStatus:
    table: str
    rows: int | None
    published_through: int | None = None  # facts: the ledger's last key
    newest_key: int | None = None


@dataclass(frozen=True)
class StatusReport:
    now: datetime
    sources: list[SourceStatus]
    marts: list[MartStatus]
    runs: list[ops.CycleRun]
    stack: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


def gather(settings: Settings, *, stack: dict[str, Any] | None = None) -> StatusReport:
    """Everything `totes status` shows; a part that cannot be read is listed in `problems`."""
    problems: list[str] = []
    loaded: dict[str, dict[str, Any]] = {}
    raw_rows: dict[str, int] = {}
    marts: list[MartStatus] = []
    runs: list[ops.CycleRun] = []
    loaded_seq: int | None = None
    try:
        conn = settings.warehouse_connection()
    except Exception as err:
        problems.append(f"warehouse: {err}")
    else:
        try:
            loaded_seq, loaded = _loaded(conn)
            raw_rows = _raw_counts(conn)
            marts = _marts(conn)
            runs = ops.recent_runs(conn)
        finally:
            conn.close()
    committed: dict[str, Any] = {}
    try:
        committed = _latest_manifest(settings, after=loaded_seq)
    except Exception as err:
        problems.append(f"ingestion bucket: {err}")
    tables = sorted(set(loaded) | set(raw_rows) | set(committed.get("tables", {})))
    sources = [
        SourceStatus(
            table=t,
            committed_seq=committed.get("seq") if t in committed.get("tables", {}) else None,
            committed_watermark=committed.get("tables", {}).get(t),
            loaded_seq=loaded.get(t, {}).get("seq"),
            loaded_watermark=loaded.get(t, {}).get("watermark"),
            raw_rows=raw_rows.get(t),
            last_loaded_at=loaded.get(t, {}).get("loaded_at"),
        )
        for t in tables
    ]
    return StatusReport(datetime.now(UTC), sources, marts, runs, stack, problems)


def show(settings: Settings) -> int:
    """Print the status with rich tables; non-zero when a part could not be read."""
    from rich.console import Console

    report = gather(settings, stack=_local_stack_status())
    render(report, Console())
    return 1 if report.problems else 0


def render(report: StatusReport, console: Any) -> None:
    from rich.table import Table

    if report.stack is not None:
        pg, s3 = report.stack["postgres"], report.stack["s3"]
        console.print(
            f"local stack {report.stack['home']}: postgres {_running(pg['running'])}, "
            f"AWS endpoint {_running(s3['running'])} {s3.get('endpoint') or ''}"
        )
    sources = Table(title="source tables", title_justify="left")
    for column in ("table", "committed (seq · watermark)", "loaded (seq · watermark)", "raw rows",
                   "last load", "lag"):  # fmt: skip
        sources.add_column(column, justify="right" if column == "raw rows" else "left")
    for s in report.sources:
        lag = s.lag(report.now)
        sources.add_row(
            s.table,
            _pair(s.committed_seq, s.committed_watermark),
            _pair(s.loaded_seq, s.loaded_watermark),
            _num(s.raw_rows),
            f"{s.last_loaded_at:%Y-%m-%d %H:%M:%S}" if s.last_loaded_at else "",
            _lag(lag),
        )
    console.print(sources)
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


# ---- readers ------------------------------------------------------------------------------------


def _loaded(conn: pg8000.native.Connection) -> tuple[int | None, dict[str, dict[str, Any]]]:
    """The newest loaded seq overall, and per table its newest seq, watermark and load time."""
    if not _exists(conn, "raw", "_manifest_tables"):
        return None, {}
    rows = conn.run(
        "select distinct on (table_name) table_name, seq, watermark_high::text,"
        " max(loaded_at) over (partition by table_name)"
        " from raw._manifest_tables order by table_name, seq desc"
    )
    newest = conn.run("select max(seq) from raw._manifest_tables")[0][0]
    return newest, {
        t: {"seq": seq, "watermark": mark, "loaded_at": at} for t, seq, mark, at in rows
    }


def _raw_counts(conn: pg8000.native.Connection) -> dict[str, int]:
    tables = conn.run(
        "select tablename from pg_catalog.pg_tables where schemaname = 'raw'"
        " and tablename not like '\\_%' order by 1"
    )
    return {
        t: conn.run(f"select count(*) from {qualified('raw', t)}")[0][0]  # noqa: S608 - quoted
        for (t,) in tables
    }


def _marts(conn: pg8000.native.Connection) -> list[MartStatus]:
    published: dict[str, int] = {}
    if _exists(conn, "ops", "publish_ledger"):
        published = dict(conn.run("select table_name, last_key from ops.publish_ledger"))
    found = []
    for table in (*publish.DIMENSIONS, *publish.FACTS):
        if not _exists(conn, publish.MARTS, table):
            found.append(MartStatus(table, None))
            continue
        name = qualified(publish.MARTS, table)
        rows = conn.run(f"select count(*) from {name}")[0][0]  # noqa: S608 - quoted
        newest = None
        if table in publish.FACTS:
            key = quote_ident(publish.FACTS[table])
            newest = conn.run(f"select max({key}) from {name}")[0][0]  # noqa: S608 - quoted
        found.append(MartStatus(table, rows, published.get(table), newest))
    return found


def _latest_manifest(settings: Settings, *, after: int | None) -> dict[str, Any]:
    """The newest committed manifest: its seq and each table's watermark high."""
    s3 = settings.client("s3")
    start = f"{MANIFESTS}{after:010d}.json" if after else ""
    newest = None
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.ingestion_bucket, Prefix=MANIFESTS, StartAfter=start
    ):
        for obj in page.get("Contents", []):
            newest = obj["Key"]
    if newest is None and after:
        newest = start
    if newest is None:
        return {}
    body = json.loads(s3.get_object(Bucket=settings.ingestion_bucket, Key=newest)["Body"].read())
    return {
        "seq": body.get("seq"),
        "tables": {t["table"]: (t.get("watermark") or {}).get("high") for t in body["tables"]},
    }


def _exists(conn: pg8000.native.Connection, schema: str, table: str) -> bool:
    return bool(
        conn.run(
            "select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n"
            " on n.oid = c.relnamespace where n.nspname = :s and c.relname = :t",
            s=schema,
            t=table,
        )
    )


def _local_stack_status() -> dict[str, Any] | None:
    from infra.local.stack import LocalStack

    stack = LocalStack.from_env()
    return stack.status() if stack.state_file.exists() else None


# ---- formatting ---------------------------------------------------------------------------------


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
