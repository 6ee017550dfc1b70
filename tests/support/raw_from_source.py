"""Development/test stand-in for extract + load: copies totesys tables into the warehouse's
`raw` schema exactly as docs/CONTRACTS.md describes the loader's output, so the dbt project can
be developed and tested before (or independently of) the real extractor and loader.

Each call to `load_raw` behaves like one committed manifest: it takes the next `seq`, copies the
rows of every table with `watermark_low <= last_updated < watermark_high` (or every row again
when `redeliver_all=True`, which re-delivers versions already loaded, as a crash/retry would),
adds the lineage columns and records one `raw._manifest_tables` row per table, even with 0 rows.
Data moves with COPY (pg8000 COPY TO into memory, COPY FROM into raw), never row by row.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import pyarrow as pa

from infra.local.totesys.schema import TOTESYS_TABLES
from lambda_loader import deletions
from runtime import lake
from runtime.db import quote_ident
from runtime.pg_types import Column

TABLES = TOTESYS_TABLES

_LEDGER_DDL = (
    "create schema if not exists raw",
    """create table if not exists raw._manifest_ledger (
        manifest_key text primary key, seq bigint unique, run_id text, rows bigint,
        loaded_at timestamptz)""",
    """create table if not exists raw._manifest_tables (
        seq bigint, table_name text, rows bigint, watermark_low timestamp(3),
        watermark_high timestamp(3), loaded_at timestamptz, primary key (seq, table_name))""",
    """create table if not exists raw._load_failures (
        manifest_key text, seq bigint, error text, file text,
        failed_at timestamptz default now(), resolved boolean default false)""",
)


def source_columns(totesys: Any, table: str) -> list[Column]:
    """Columns of a totesys table in order (totesys has no domains: an enum is the only type
    `Column` cannot type from its name)."""
    rows = totesys.run(
        """select a.attname, format_type(a.atttypid, a.atttypmod), t.typtype, not a.attnotnull
           from pg_attribute a
           join pg_class c on c.oid = a.attrelid
           join pg_namespace n on n.oid = c.relnamespace
           join pg_type t on t.oid = a.atttypid
           where n.nspname = 'public' and c.relname = :table
             and a.attnum > 0 and not a.attisdropped
           order by a.attnum""",
        table=table,
    )
    cols = [
        Column(name, formatted, nullable, "string" if typtype == "e" else "")
        for name, formatted, typtype, nullable in rows
    ]
    if not cols:
        raise LookupError(f"totesys has no table {table!r}")
    return cols


def raw_type(column: Column) -> str:
    """The raw-layer type (CONTRACTS.md): text for every column carried as text (text,
    varchar, enums), the source's own type for the rest."""
    return "text" if column.arrow == pa.string() else column.pg_type


def ensure_raw_tables(totesys: Any, warehouse: Any) -> None:
    """Create raw.<table> (source columns + lineage) and the manifest bookkeeping tables."""
    for statement in _LEDGER_DDL:
        warehouse.run(statement)
    for table in TABLES:
        cols = ",\n".join(
            f"{quote_ident(c.name)} {raw_type(c)}" for c in source_columns(totesys, table)
        )
        warehouse.run(
            f"""create table if not exists raw.{quote_ident(table)} (
                {cols},
                _manifest_seq bigint not null,
                _run_id text not null,
                _source_file text not null,
                _loaded_at timestamptz not null)"""
        )
    deletions.create_table(warehouse)  # the loader's, empty: this stand-in deletes nothing


def load_raw(totesys: Any, warehouse: Any, *, redeliver_all: bool = False) -> int:
    """Copy one 'manifest' worth of changed rows into raw; return the manifest seq."""
    ensure_raw_tables(totesys, warehouse)
    seq = int(warehouse.run("select coalesce(max(seq), 0) + 1 from raw._manifest_ledger")[0][0])
    run_id = f"dev-{seq:06d}-{uuid.uuid4().hex[:8]}"
    total = 0
    warehouse.run("begin")
    try:
        for table in TABLES:
            low = None
            if not redeliver_all:
                low = warehouse.run(
                    "select max(watermark_high) from raw._manifest_tables where table_name = :t",
                    t=table,
                )[0][0]
            high = totesys.run(
                f"select max(last_updated) + interval '1 millisecond' "
                f"from public.{quote_ident(table)}"
            )[0][0]
            rows = _copy_table(totesys, warehouse, table, low, high, seq, run_id)
            total += rows
            warehouse.run(
                """insert into raw._manifest_tables
                   (seq, table_name, rows, watermark_low, watermark_high, loaded_at)
                   values (:seq, :t, :rows, :low, :high, clock_timestamp())""",
                seq=seq,
                t=table,
                rows=rows,
                low=low,
                high=high if high is not None else low,
            )
        warehouse.run(
            """insert into raw._manifest_ledger (manifest_key, seq, run_id, rows, loaded_at)
               values (:key, :seq, :run_id, :rows, clock_timestamp())""",
            key=lake.manifest_key(seq),
            seq=seq,
            run_id=run_id,
            rows=total,
        )
        warehouse.run("commit")
    except Exception:
        warehouse.run("rollback")
        raise
    return seq


def _copy_table(
    totesys: Any, warehouse: Any, table: str, low: Any, high: Any, seq: int, run_id: str
) -> int:
    cols = [c.name for c in source_columns(totesys, table)]
    col_list = ", ".join(quote_ident(c) for c in cols)
    where = "last_updated < :high"
    params: dict[str, Any] = {"high": high}
    if high is None:
        where = "false"
        params = {}
    elif low is not None:
        where = "last_updated >= :low and last_updated < :high"
        params["low"] = low
    # COPY takes no bind parameters: select the window into a temp table first, then COPY it.
    totesys.run("drop table if exists pg_temp._window")
    totesys.run(
        f"create temp table _window as select {col_list} from public.{quote_ident(table)} "
        f"where {where} order by 1",
        **params,
    )
    buf = io.BytesIO()
    totesys.run("copy _window to stdout (format binary)", stream=buf)
    buf.seek(0)
    warehouse.run("drop table if exists pg_temp._stage")
    warehouse.run(
        f"create temp table _stage as select {col_list} from raw.{quote_ident(table)} with no data"
    )
    warehouse.run("copy _stage from stdin (format binary)", stream=buf)
    source_file = f"{lake.DATA_PREFIX}{table}/dev/{run_id}-00000.parquet"
    warehouse.run(
        f"insert into raw.{quote_ident(table)} ({col_list}, _manifest_seq, _run_id, "
        f"_source_file, _loaded_at) select {col_list}, :seq, :run_id, :file, clock_timestamp() "
        f"from _stage",
        seq=seq,
        run_id=run_id,
        file=source_file,
    )
    return int(warehouse.run("select count(*) from _stage")[0][0])
