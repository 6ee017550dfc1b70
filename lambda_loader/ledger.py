"""The manifest ledger: which manifests are in the raw layer (or were skipped), written in the
same transaction as their rows, so a manifest is either wholly loaded and recorded, or neither.

Beyond docs/CONTRACTS.md's columns, `raw._manifest_ledger` carries `status` ('loaded' or
'skipped') and `reason` (why an operator skipped it): a skip is a ledger entry, never silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pg8000.native

from lambda_loader.rawschema import RAW_SCHEMA
from runtime.db import quote_ident
from runtime.lake import Manifest

# One advisory lock key for every loader of this warehouse: loaders take turns per manifest, and
# whoever gets the lock second sees the first one's ledger row and moves on. ("totesld" in hex.)
LOCK_KEY = 0x746F7465736C64

LOADED = "loaded"
SKIPPED = "skipped"

_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {quote_ident(RAW_SCHEMA)}",
    """CREATE TABLE IF NOT EXISTS raw._manifest_ledger (
        manifest_key text PRIMARY KEY,
        seq bigint NOT NULL UNIQUE,
        run_id text,
        rows bigint NOT NULL,
        loaded_at timestamptz NOT NULL,
        status text NOT NULL DEFAULT 'loaded' CHECK (status IN ('loaded', 'skipped')),
        reason text,
        CHECK (status = 'loaded' OR reason IS NOT NULL)
    )""",
    """CREATE TABLE IF NOT EXISTS raw._manifest_tables (
        seq bigint NOT NULL,
        table_name text NOT NULL,
        rows bigint NOT NULL,
        watermark_low timestamp(3),
        watermark_high timestamp(3),
        loaded_at timestamptz NOT NULL,
        PRIMARY KEY (seq, table_name)
    )""",
)


def create_tables(conn: pg8000.native.Connection) -> None:
    for statement in _DDL:
        conn.run(statement)


@dataclass(frozen=True)
class LoadedTable:
    """A source table's newest manifest in raw, and when the table was last loaded."""

    seq: int
    watermark_high: str | None
    loaded_at: datetime


def loaded_tables(conn: pg8000.native.Connection) -> dict[str, LoadedTable]:
    """Per source table, from `raw._manifest_tables`; empty before the first load."""
    if conn.run("SELECT to_regclass('raw._manifest_tables') IS NULL")[0][0]:
        return {}
    rows = conn.run(
        "SELECT DISTINCT ON (table_name) table_name, seq, watermark_high::text,"
        " max(loaded_at) OVER (PARTITION BY table_name)"
        " FROM raw._manifest_tables ORDER BY table_name, seq DESC"
    )
    return {table: LoadedTable(seq, mark, at) for table, seq, mark, at in rows}


def lock(conn: pg8000.native.Connection) -> None:
    """Wait for this warehouse's loader lock; held until the current transaction ends."""
    conn.run("SELECT pg_advisory_xact_lock(:key)", key=LOCK_KEY)


def last_seq(conn: pg8000.native.Connection) -> int | None:
    """The newest seq recorded (loaded or skipped): everything after it is pending."""
    return conn.run("SELECT max(seq) FROM raw._manifest_ledger")[0][0]


def status_of(conn: pg8000.native.Connection, seq: int) -> str | None:
    rows = conn.run("SELECT status FROM raw._manifest_ledger WHERE seq = :seq", seq=seq)
    return rows[0][0] if rows else None


def transaction_time(conn: pg8000.native.Connection) -> datetime:
    """now(): the same instant for every row, ledger entry and table entry of a manifest."""
    return conn.run("SELECT now()")[0][0]


def record_loaded(
    conn: pg8000.native.Connection,
    manifest: Manifest,
    rows_by_table: dict[str, int],
    loaded_at: datetime,
) -> None:
    conn.run(
        "INSERT INTO raw._manifest_ledger (manifest_key, seq, run_id, rows, loaded_at, status) "
        "VALUES (:key, :seq, :run_id, :rows, :loaded_at, 'loaded')",
        key=manifest.key,
        seq=manifest.seq,
        run_id=manifest.run_id,
        rows=sum(rows_by_table.values()),
        loaded_at=loaded_at,
    )
    for entry in manifest.tables:
        conn.run(
            "INSERT INTO raw._manifest_tables "
            "(seq, table_name, rows, watermark_low, watermark_high, loaded_at) "
            "VALUES (:seq, :table, :rows, CAST(:low AS timestamp(3)), "
            "CAST(:high AS timestamp(3)), :loaded_at)",
            seq=manifest.seq,
            table=entry.table,
            rows=rows_by_table.get(entry.table, 0),
            low=entry.watermark_low,
            high=entry.watermark_high,
            loaded_at=loaded_at,
        )


def record_skipped(
    conn: pg8000.native.Connection, *, seq: int, manifest_key: str, run_id: str | None, reason: str
) -> None:
    """A skipped manifest: in the ledger so the queue moves on, with no _manifest_tables rows
    (its tables did not become current as of that run)."""
    conn.run(
        "INSERT INTO raw._manifest_ledger "
        "(manifest_key, seq, run_id, rows, loaded_at, status, reason) "
        "VALUES (:key, :seq, :run_id, 0, now(), 'skipped', :reason)",
        key=manifest_key,
        seq=seq,
        run_id=run_id,
        reason=reason,
    )
