"""Helpers for the cycle tests that run `totes run` as a real process: start it, find the dbt it
runs, and check that raw and the marts hold exactly what totesys holds."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from infra.local.totesys.schema import TOTESYS_TABLES
from runtime.db import quote_ident

FACT_SOURCES = {
    "fact_sales_order": "sales_order",
    "fact_purchase_order": "purchase_order",
    "fact_payment": "payment",
}
PATIENCE_S = 600  # generous: the machine may be loaded; polling ends as soon as it can


def totes_run(isolated: Any, home: Path, log: Path, **env: str) -> subprocess.Popen:
    """`totes run` in its own process, aimed at the test's isolated stack; output to `log`."""
    out = log.open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "totes.cli", "run"],
            env={**isolated.env(), "TOTES_HOME": str(home), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    finally:
        out.close()  # the child has its own copy


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = PATIENCE_S) -> Any:
    """Poll `check` until it returns something true; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def dbt_build_processes(parent: subprocess.Popen) -> list[psutil.Process]:
    """The `dbt build` processes below `parent` (empty once it has none, or has exited)."""
    try:
        children = psutil.Process(parent.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if _is_dbt_build(p)]


def _is_dbt_build(process: psutil.Process) -> bool:
    try:
        line = process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
    return any(Path(part).name == "dbt" for part in line) and "build" in line


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` still running (a zombie waiting for its reaper counts as ended)."""
    living = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                living.append(process)
        except psutil.NoSuchProcess:
            pass
    return living


# moto's SNS delivers to a subscribed queue inside Publish, so an alert sent before the call is
# already in the queue: a short wait suffices, and a read expecting none costs only this.
ALERT_WAIT_S = 1


def alerts(isolated: Any, queue_url: str) -> list[dict]:
    """Alerts delivered to the SNS topic, read (and consumed) through its SQS subscription: each
    message's JSON with its `subject`."""
    sqs = isolated.settings.client("sqs")
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=ALERT_WAIT_S
    ).get("Messages", [])
    for message in received:  # consumed: a later read sees only newer alerts
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    envelopes = [json.loads(m["Body"]) for m in received]
    return [{"subject": e.get("Subject"), **json.loads(e["Message"])} for e in envelopes]


def hold_raw_tables(conn: Any) -> None:
    """Lock every raw table until `conn` ends: a dbt that starts after the load (as the cycle's
    does) blocks on its first read of raw and cannot finish on its own meanwhile."""
    tables = conn.run("select tablename from pg_catalog.pg_tables where schemaname = 'raw'")
    names = ", ".join(f"raw.{quote_ident(t)}" for [t] in tables)
    conn.run("start transaction")
    conn.run(f"lock table {names} in access exclusive mode")


def waiting_on(conn: Any) -> bool:
    """Whether another session of this database waits on a lock (dbt, on the raw tables)."""
    conn.run("select pg_stat_clear_snapshot()")  # else a transaction sees its first snapshot
    [[waiting]] = conn.run(
        "select count(*) from pg_catalog.pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid() and wait_event_type = 'Lock'"
    )
    return waiting > 0


def source_rows(totesys: Any, table: str) -> tuple[list[str], list[list]]:
    """A totesys table's columns and rows (enums as text, as raw keeps them)."""
    columns = totesys.run(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'public' and table_name = :t order by ordinal_position",
        t=table,
    )
    names = ", ".join(
        f"{quote_ident(c)}::text" if kind == "USER-DEFINED" else quote_ident(c)
        for c, kind in columns
    )
    return [c for c, _ in columns], totesys.run(f"select {names} from public.{quote_ident(table)}")


def assert_raw_and_marts_match_the_source(isolated: Any) -> None:
    """Raw holds every source row exactly once; each fact has one row per source version."""
    totesys, warehouse = isolated.totesys(), isolated.warehouse()
    try:
        for table in TOTESYS_TABLES:
            columns, rows = source_rows(totesys, table)
            names = ", ".join(quote_ident(c) for c in columns)
            loaded = warehouse.run(f"select {names} from raw.{quote_ident(table)}")
            assert sorted(loaded, key=repr) == sorted(rows, key=repr), f"raw.{table}"
        for fact, source in FACT_SOURCES.items():
            [[expected]] = totesys.run(f"select count(*) from public.{quote_ident(source)}")
            [[found]] = warehouse.run(f"select count(*) from marts.{quote_ident(fact)}")
            assert found == expected, fact
    finally:
        totesys.close()
        warehouse.close()
