"""`raw._load_failures`: manifests that failed to load, kept for inspection.

Written in its own committed transaction (the load's own transaction has rolled back). One open
row per manifest: a manifest that keeps failing on every scheduled run updates that row
(`attempts`, latest error) instead of adding one per run. The row is resolved in the transaction
that finally loads the manifest, or by the operator's skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pg8000.native

_DDL = (
    """CREATE TABLE IF NOT EXISTS raw._load_failures (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key text NOT NULL,
        seq bigint NOT NULL,
        error text NOT NULL,
        file text,
        failed_at timestamptz NOT NULL,
        resolved boolean NOT NULL DEFAULT false,
        run_id text,
        attempts integer NOT NULL DEFAULT 1,
        first_failed_at timestamptz NOT NULL,
        resolved_at timestamptz,
        resolution text
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS _load_failures_open ON raw._load_failures (seq) "
    "WHERE NOT resolved",
)


@dataclass(frozen=True)
class Failure:
    key: str
    seq: int
    error: str
    file: str | None
    failed_at: datetime
    attempts: int
    resolved: bool
    resolution: str | None


def create_tables(conn: pg8000.native.Connection) -> None:
    for statement in _DDL:
        conn.run(statement)


def record(
    conn: pg8000.native.Connection,
    *,
    key: str,
    seq: int,
    error: str,
    file: str | None,
    run_id: str,
) -> None:
    """Record (or refresh) the open failure of manifest `seq`; commits on its own."""
    conn.run(
        "INSERT INTO raw._load_failures "
        "(key, seq, error, file, failed_at, run_id, first_failed_at) "
        "VALUES (:key, :seq, :error, :file, now(), :run_id, now()) "
        "ON CONFLICT (seq) WHERE NOT resolved DO UPDATE SET error = excluded.error, "
        "file = excluded.file, failed_at = excluded.failed_at, run_id = excluded.run_id, "
        "key = excluded.key, attempts = raw._load_failures.attempts + 1",
        key=key,
        seq=seq,
        error=error,
        file=file,
        run_id=run_id,
    )


def resolve(conn: pg8000.native.Connection, seq: int, resolution: str) -> None:
    conn.run(
        "UPDATE raw._load_failures SET resolved = true, resolved_at = now(), "
        "resolution = :resolution WHERE seq = :seq AND NOT resolved",
        seq=seq,
        resolution=resolution,
    )


def listing(conn: pg8000.native.Connection, *, include_resolved: bool = False) -> list[Failure]:
    rows = conn.run(
        "SELECT key, seq, error, file, failed_at, attempts, resolved, resolution "
        "FROM raw._load_failures WHERE :all OR NOT resolved ORDER BY seq, id",
        all=include_resolved,
    )
    return [Failure(*row) for row in rows]
