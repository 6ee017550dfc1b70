"""The warehouse's `ops` schema: the cycle's own record, `ops.cycle_runs`.

One row per cycle, written by `totes run` when it starts (`running`) and when it ends
(`succeeded` / `failed`, the failing step and its error, a JSON summary per step); never by dbt.
The publish step keeps its ledgers in the same schema (`publish.ledger`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pg8000.native

from runtime.db import run_ddl_once

SCHEMA = "ops"
_DDL_LOCK = 7_412_001  # pg_advisory_xact_lock key: concurrent `create ... if not exists` race

_DDL = (
    "create schema if not exists ops",
    """
    create table if not exists ops.cycle_runs (
        run_id text primary key,
        started_at timestamptz not null,
        finished_at timestamptz,
        status text not null check (status in ('running', 'succeeded', 'failed')),
        failed_step text,
        error text,
        steps jsonb not null default '[]'::jsonb
    )
    """,
    "create index if not exists cycle_runs_started_at on ops.cycle_runs (started_at desc)",
)


@dataclass(frozen=True)
class CycleRun:
    """One row of `ops.cycle_runs`."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    failed_step: str | None
    error: str | None
    steps: list[dict[str, Any]]


def ensure_schema(conn: pg8000.native.Connection) -> None:
    """Create the ops schema and `ops.cycle_runs` if absent (safe when cycles start at once)."""
    run_ddl_once(conn, _DDL_LOCK, _DDL)


def record_cycle_start(conn: pg8000.native.Connection, run_id: str, started_at: datetime) -> None:
    conn.run(
        "insert into ops.cycle_runs (run_id, started_at, status) values (:run_id, :started, "
        "'running') on conflict (run_id) do nothing",
        run_id=run_id,
        started=started_at,
    )


def record_cycle_end(
    conn: pg8000.native.Connection,
    run_id: str,
    *,
    started_at: datetime,
    finished_at: datetime,
    status: str,
    failed_step: str | None,
    error: str | None,
    steps: Sequence[dict[str, Any]],
) -> None:
    conn.run(
        """
        insert into ops.cycle_runs
            (run_id, started_at, finished_at, status, failed_step, error, steps)
        values (:run_id, :started, :finished, :status, :step, :error, cast(:steps as jsonb))
        on conflict (run_id) do update set
            finished_at = excluded.finished_at, status = excluded.status,
            failed_step = excluded.failed_step, error = excluded.error, steps = excluded.steps
        """,
        run_id=run_id,
        started=started_at,
        finished=finished_at,
        status=status,
        step=failed_step,
        error=error,
        steps=json.dumps(list(steps), default=str),
    )


def recent_runs(conn: pg8000.native.Connection, limit: int = 5) -> list[CycleRun]:
    """The newest cycles first; empty when no cycle has recorded itself yet."""
    if not _table_exists(conn, "cycle_runs"):
        return []
    rows = conn.run(
        "select run_id, started_at, finished_at, status, failed_step, error, steps::text "
        "from ops.cycle_runs order by started_at desc limit :limit",
        limit=limit,
    )
    return [CycleRun(*row[:6], json.loads(row[6])) for row in rows]


def _table_exists(conn: pg8000.native.Connection, table: str) -> bool:
    found = conn.run(
        "select 1 from pg_catalog.pg_tables where schemaname = :schema and tablename = :table",
        schema=SCHEMA,
        table=table,
    )
    return bool(found)
