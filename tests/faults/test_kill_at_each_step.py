"""kill -9 of `totes run` halfway through each step: the kill loses nothing and duplicates
nothing, and the next cycle marks the killed one `abandoned` and brings raw, the marts and the
processed bucket back to exactly the source.

The killed cycle is a real `totes run` process on the real stack. For extract, load and publish
tests/support/killed_cycle.py chooses the moment: after the extract's files and before its
manifest, mid-COPY inside the load's transaction, after a publish upload and before its ledger.
For dbt the test holds every raw table so the build cannot finish on its own, and kills the
parent alone: only the end of its parent can end dbt.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.cycles import (
    PATIENCE_S,
    alerts,
    alive,
    assert_raw_and_marts_match_the_source,
    dbt_build_processes,
    hold_raw_tables,
    totes_run,
    wait_until,
    waiting_on,
)

from infra.local.totesys import seed
from publish import marts
from runtime import lake
from runtime.db import quote_ident
from totes import cycle, ops

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[1]


def killed_cycle(isolated, home: Path, topic: str, step: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "support.killed_cycle", step],
        env={
            **isolated.env(),
            "TOTES_HOME": str(home),
            "ALERT_TOPIC_ARN": topic,
            "PYTHONPATH": f"{TESTS}:{TESTS.parent}",
        },
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=False,
    )


def raw_rows(isolated) -> int:
    conn = isolated.warehouse()
    try:
        tables = conn.run("select tablename from pg_catalog.pg_tables where schemaname = 'raw'")
        return sum(conn.run(f"select count(*) from raw.{quote_ident(t)}")[0][0] for [t] in tables)
    finally:
        conn.close()


def processed_objects(isolated) -> Counter:
    """Every object version in the processed bucket (a key written twice counts 2)."""
    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    versions: Counter = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            versions[version["Key"]] += 1
        for marker in page.get("DeleteMarkers", []):
            versions[marker["Key"]] += 100  # a delete is as bad as an overwrite
    return versions


def published_keys(isolated, table: str, key: str) -> list[int]:
    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    found: list[int] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"marts/{table}/"
    ):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            found += [row[key] for row in pq.read_table(io.BytesIO(body)).to_pylist()]
    return sorted(found)


def mart_keys(isolated, table: str, key: str) -> list[int]:
    conn = isolated.warehouse()
    try:
        return [k for [k] in conn.run(f"select {quote_ident(key)} from marts.{table} order by 1")]
    finally:
        conn.close()


def what_the_kill_left(isolated, step: str) -> None:
    """The half-done step left nothing a reader could take for committed work."""
    s3 = isolated.s3()
    if step == "extract":
        assert lake.latest_seq(s3, isolated.settings.ingestion_bucket) is None  # no manifest
        assert (
            s3.list_objects_v2(  # though its data files were written
                Bucket=isolated.settings.ingestion_bucket, Prefix="totesys/"
            ).get("KeyCount", 0)
            > 0
        )
    if step == "load":
        assert raw_rows(isolated) == 0  # the manifest's transaction never committed
    if step == "publish":
        assert processed_objects(isolated), "killed after an upload: an object is there"


@pytest.mark.parametrize("step", ["extract", "load", "publish"])
def test_kill_9_mid_step_loses_and_duplicates_nothing_and_the_next_cycle_catches_up(
    isolated, sns_queue, tmp_path, step
):
    conn = isolated.totesys()
    try:
        seed(conn, scale=0.02, end=date(2024, 11, 1))
    finally:
        conn.close()
    topic, queue_url = sns_queue

    killed = killed_cycle(isolated, tmp_path / "home", topic, step)

    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    what_the_kill_left(isolated, step)
    settings = isolated.settings.with_(alert_topic_arn=topic)
    later = cycle.run_cycle(settings, work_dir=tmp_path / "runs", dbt_docs=False)

    assert later.ok, later.describe()
    conn = isolated.warehouse()
    try:
        runs = {r.run_id: r.status for r in ops.recent_runs(conn)}
    finally:
        conn.close()
    assert runs.pop(later.run_id) == "succeeded"
    assert list(runs.values()) == ["abandoned"]  # the killed cycle, found by the next one
    assert_raw_and_marts_match_the_source(isolated)
    for table, key in marts.FACTS.items():
        assert published_keys(isolated, table, key) == mart_keys(isolated, table, key), table
    assert set(processed_objects(isolated).values()) == {1}  # nothing overwritten or deleted
    assert alerts(isolated, queue_url) == []  # the next cycle succeeded: nothing to report


def test_kill_9_of_totes_run_mid_dbt_ends_dbt_and_the_next_cycle_marks_it_abandoned(
    isolated, sns_queue, tmp_path
):
    conn = isolated.totesys()
    try:
        seed(conn, scale=0.05, end=date(2024, 11, 1))
    finally:
        conn.close()
    topic, queue_url = sns_queue

    # The test holds every raw table, so dbt blocks on its first read of one and cannot finish
    # on its own: only the end of its parent can end it.
    hold, dbt = isolated.warehouse(), []
    run = totes_run(isolated, tmp_path / "home", tmp_path / "run.log", ALERT_TOPIC_ARN=topic)
    try:
        dbt = wait_until(lambda: dbt_build_processes(run), "the cycle's dbt build")
        hold_raw_tables(hold)
        wait_until(lambda: waiting_on(hold), "dbt to wait on the raw tables")
        os.kill(run.pid, signal.SIGKILL)  # the parent alone, as `kill -9 <pid>` does
        assert run.wait(timeout=60) == -signal.SIGKILL
        wait_until(lambda: not alive(dbt), "dbt to end with its parent", timeout_s=120)
    finally:
        run.kill()
        for process in alive(dbt):  # never leave a stray dbt behind a failed test
            process.kill()
        hold.close()  # lets go of the raw tables
    conn = isolated.warehouse()
    try:
        [killed] = ops.recent_runs(conn)
    finally:
        conn.close()
    assert killed.status == "running"

    settings = isolated.settings.with_(alert_topic_arn=topic)
    after = cycle.run_cycle(settings, dbt_docs=False)

    assert after.ok, after.describe()
    conn = isolated.warehouse()
    try:
        runs = {r.run_id: r for r in ops.recent_runs(conn)}
    finally:
        conn.close()
    assert runs[after.run_id].status == "succeeded"
    assert runs[killed.run_id].status == "abandoned"
    assert runs[killed.run_id].finished_at is not None
    assert "abandoned" in (runs[killed.run_id].error or "")
    assert_raw_and_marts_match_the_source(isolated)
    assert alerts(isolated, queue_url) == []
