"""`totes status`: where the pipeline stands, read from the lake, the warehouse and the stack.

Per source table: the watermark of the newest committed manifest in the ingestion bucket, the
newest manifest loaded into `raw`, the rows in `raw`, and the freshness lag (now minus the
table's last load, the same measure dbt source freshness uses), and the raw columns its staging
view does not select: a column the source added, which raw carries but no model reads yet. Per
mart: its rows and, for facts, how far the lake copy is published. Then the last cycles from
`ops.cycle_runs` and, when `TOTES_HOME` holds a local stack, whether its PostgreSQL and AWS
endpoint are running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pg8000.native

from lambda_loader import ledger as load_ledger
from lambda_loader import rawschema
from publish import ledger as publish_ledger
from publish import marts as mart_list
from runtime import lake
from runtime.config import Settings
from runtime.db import qualified, quote_ident
from totes import ops


@dataclass(frozen=True)
class SourceStatus:
    table: str
    committed_seq: int | None = None
    committed_watermark: str | None = None
    loaded_seq: int | None = None
    loaded_watermark: str | None = None
    raw_rows: int | None = None
    last_loaded_at: datetime | None = None
    deleted: int | None = None  # keys recorded as deleted in raw._deletions (distinct)
    # Raw columns its staging view does not select (new in the source, not modelled yet).
    unmodelled: tuple[str, ...] = ()

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
    deleted: dict[str, int] = {}
    unmodelled: dict[str, tuple[str, ...]] = {}
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
            deleted = _deleted_counts(conn)
            unmodelled = _unmodelled(conn)
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
            deleted=deleted.get(t, 0 if t in raw_rows else None),
            last_loaded_at=loaded.get(t, {}).get("loaded_at"),
            unmodelled=unmodelled.get(t, ()),
        )
        for t in tables
    ]
    return StatusReport(datetime.now(UTC), sources, marts, runs, stack, problems)


# ---- readers ------------------------------------------------------------------------------------


def _loaded(conn: pg8000.native.Connection) -> tuple[int | None, dict[str, dict[str, Any]]]:
    """The newest loaded seq overall, and per table its newest seq, watermark and load time."""
    tables = load_ledger.loaded_tables(conn)
    newest = max((t.seq for t in tables.values()), default=None)
    return newest, {
        name: {"seq": t.seq, "watermark": t.watermark_high, "loaded_at": t.loaded_at}
        for name, t in tables.items()
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


def _deleted_counts(conn: pg8000.native.Connection) -> dict[str, int]:
    """Per source table, the deletions in raw._deletions (one per key and deleted version: a
    re-covered window may have delivered one twice)."""
    if conn.run("select to_regclass('raw._deletions') is null")[0][0]:
        return {}
    rows = conn.run(
        "select table_name, count(distinct (key, last_updated)) from raw._deletions group by 1"
    )
    return {table: int(n) for table, n in rows}


STAGING_SCHEMA = "staging"  # dbt's staging models, one view per source table


def _unmodelled(conn: pg8000.native.Connection) -> dict[str, tuple[str, ...]]:
    """Per raw table, its source columns that its staging view (`stg_totesys__<table>`, which
    keeps every source column's name) does not select; a table without that view is left out."""
    views: dict[str, set[str]] = {}
    for view, column in conn.run(
        "select c.relname, a.attname from pg_catalog.pg_attribute a"
        " join pg_catalog.pg_class c on c.oid = a.attrelid"
        " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = :schema and c.relkind = 'v' and a.attnum > 0"
        " and not a.attisdropped",
        schema=STAGING_SCHEMA,
    ):
        views.setdefault(view, set()).add(column)
    found = {}
    for table, columns in rawschema.source_columns(conn).items():
        selected = views.get(f"stg_totesys__{table}")
        missing = tuple(c for c in columns if selected is not None and c not in selected)
        if missing:
            found[table] = missing
    return found


def _marts(conn: pg8000.native.Connection) -> list[MartStatus]:
    published = publish_ledger.published_through(conn)
    found = []
    for table in mart_list.TABLES:
        if not _exists(conn, mart_list.SCHEMA, table):
            found.append(MartStatus(table, None))
            continue
        name = qualified(mart_list.SCHEMA, table)
        rows = conn.run(f"select count(*) from {name}")[0][0]  # noqa: S608 - quoted
        newest = None
        if table in mart_list.FACTS:
            key = quote_ident(mart_list.FACTS[table])
            newest = conn.run(f"select max({key}) from {name}")[0][0]  # noqa: S608 - quoted
        found.append(MartStatus(table, rows, published.get(table), newest))
    return found


def _latest_manifest(settings: Settings, *, after: int | None) -> dict[str, Any]:
    """The newest committed manifest: its seq and each table's watermark high. `after` (the
    newest loaded seq) is committed, so the listing starts there."""
    manifest = lake.latest_manifest(settings.client("s3"), settings.ingestion_bucket, after=after)
    if manifest is None:
        return {}
    return {"seq": manifest.seq, "tables": {t.table: t.watermark_high for t in manifest.tables}}


def _exists(conn: pg8000.native.Connection, schema: str, table: str) -> bool:
    return bool(
        conn.run(
            "select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n"
            " on n.oid = c.relnamespace where n.nspname = :s and c.relname = :t",
            s=schema,
            t=table,
        )
    )
