"""The warehouse's `ops` schema: the cycle's own record, `ops.cycle_runs`.

One row per cycle, written by `totes run` when it starts (`running`) and when it ends
(`succeeded` / `failed`, the failing step and its error, a JSON summary per step); never by dbt.
A cycle whose process died before it could record its end (`kill -9`, a lost machine) is marked
`abandoned` by the next cycle. The publish step keeps its ledgers in the same schema
(`publish.ledger`).

One cycle at a time: a cycle holds the session-level advisory lock `CYCLE_LOCK` on a connection
of its own for as long as it runs. The server releases it when that session ends, so a killed
cycle cannot leave it taken.
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
# pg_try_advisory_lock key held by the one running cycle (per database); distinct from every
# other key of the project (publish's run lock is 7_412_002, the DDL keys 7_412_0xx).
CYCLE_LOCK = 7_412_100

_DDL = (
    "create schema if not exists ops",
    """
    create table if not exists ops.cycle_runs (
        run_id text primary key,
        started_at timestamptz not null,
        finished_at timestamptz,
        status text not null constraint cycle_runs_status_check
            check (status in ('running', 'succeeded', 'failed', 'abandoned')),
        failed_step text,
        error text,
        steps jsonb not null default '[]'::jsonb
    )
    """,
    "create index if not exists cycle_runs_started_at on ops.cycle_runs (started_at desc)",
    # A table created before `abandoned` existed gets the new check once; later runs see it
    # already there and change nothing (no lock on the table, no re-validation).
    """
    do $$ begin
        if not exists (
            select 1 from pg_catalog.pg_constraint
            where conrelid = 'ops.cycle_runs'::regclass and conname = 'cycle_runs_status_check'
              and pg_catalog.pg_get_constraintdef(oid) like '%''abandoned''%'
        ) then
            alter table ops.cycle_runs drop constraint if exists cycle_runs_status_check;
            alter table ops.cycle_runs add constraint cycle_runs_status_check
                check (status in ('running', 'succeeded', 'failed', 'abandoned'));
        end if;
    end $$
    """,
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


def try_cycle_lock(conn: pg8000.native.Connection) -> bool:
    """Take the cycle lock for this session if no other session holds it; never waits."""
    [[taken]] = conn.run("select pg_try_advisory_lock(:key)", key=CYCLE_LOCK)
    return bool(taken)


def mark_abandoned(conn: pg8000.native.Connection, by_run_id: str, at: datetime) -> list[str]:
    """Mark every `running` cycle but `by_run_id` as `abandoned`; returns their run ids.

    Only the holder of the cycle lock may call this: holding it proves that no other cycle
    is running, so a `running` row left over is one whose process died mid-cycle.
    """
    rows = conn.run(
        "update ops.cycle_runs set status = 'abandoned', finished_at = :at, "
        "error = :error where status = 'running' and run_id <> :run_id returning run_id",
        at=at,
        error=f"abandoned: its process ended without recording an outcome (found by {by_run_id})",
        run_id=by_run_id,
    )
    return sorted(str(row[0]) for row in rows)


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
