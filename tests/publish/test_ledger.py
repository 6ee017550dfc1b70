"""`publish.ledger`: the publish step's tables in `ops`, created idempotently, safely at once
with the cycle's own `ops.cycle_runs` (each DDL set under its own advisory lock key)."""

from __future__ import annotations

import threading
import time

import pytest

from publish import ledger
from totes import ops

PUBLISH_TABLES = {
    "publish_ledger",
    "publish_files",
    "publish_dim_state",
    "publish_dim_pending",
    "publish_dim_checked",
    "publish_glue",
}


def ops_tables(conn) -> set[str]:
    rows = conn.run("select tablename from pg_catalog.pg_tables where schemaname = 'ops'")
    return {t for (t,) in rows}


def test_the_ledger_tables_are_created_once_and_kept(isolated):
    conn = isolated.warehouse()
    try:
        assert ledger.published_through(conn) == {}, "readable before the first publish"
        ledger.ensure_schema(conn)
        assert ops_tables(conn) == PUBLISH_TABLES, "the cycle's table is not the ledger's"
        conn.run(
            "insert into ops.publish_ledger (table_name, last_key, published_at)"
            " values ('fact_payment', 41, now())"
        )
        ledger.ensure_schema(conn)
        ops.ensure_schema(conn)
        assert ops_tables(conn) == {*PUBLISH_TABLES, "cycle_runs"}
        assert ledger.published_through(conn) == {"fact_payment": 41}
    finally:
        conn.close()


def waiting_on_a_lock(conn, pid: int) -> bool:
    rows = conn.run("select wait_event_type from pg_stat_activity where pid = :pid", pid=pid)
    return bool(rows) and rows[0][0] == "Lock"


@pytest.mark.parametrize(
    ("ensure", "tables"),
    [(ledger.ensure_schema, PUBLISH_TABLES), (ops.ensure_schema, {"cycle_runs"})],
    ids=["publish", "cycle"],
)
def test_ddl_that_loses_the_race_for_the_shared_schema_still_succeeds(isolated, ensure, tables):
    """Another key's DDL has created `ops` but not committed: this DDL waits on it, then finds
    the schema taken (a unique violation) and must run again rather than fail."""
    rival, conn, watcher = isolated.warehouse(), isolated.warehouse(), isolated.warehouse()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ensure(conn)
        except BaseException as err:
            errors.append(err)

    try:
        rival.run("start transaction")
        rival.run("create schema if not exists ops")
        pid = conn.run("select pg_backend_pid()")[0][0]
        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 30
        while not waiting_on_a_lock(watcher, pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting_on_a_lock(watcher, pid), "the DDL should wait on the rival's schema"
        rival.run("commit")
        worker.join(30)
        assert not worker.is_alive()
        assert errors == []
        assert ops_tables(watcher) == tables
    finally:
        for c in (rival, conn, watcher):
            c.close()


def test_many_cycles_and_publishes_creating_their_tables_at_once_all_succeed(isolated):
    ensures = [ledger.ensure_schema, ops.ensure_schema] * 4
    conns = [isolated.warehouse() for _ in ensures]
    start = threading.Barrier(len(ensures))
    errors: list[BaseException] = []

    def run(ensure, conn) -> None:
        start.wait()
        try:
            ensure(conn)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(ensures, conns, strict=True)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert ops_tables(conns[0]) == {*PUBLISH_TABLES, "cycle_runs"}
    finally:
        for c in conns:
            c.close()
