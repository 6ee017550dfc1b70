"""One cycle at a time: a `totes run` that starts while another is running leaves it alone,
exits 0 with a log line, records nothing and sends no alert; the next cycle catches up."""

from __future__ import annotations

import json
import re
from contextlib import suppress
from datetime import date
from pathlib import Path

import pytest
from support.cycles import (
    alerts,
    assert_raw_and_marts_match_the_source,
    dbt_build_processes,
    hold_raw_tables,
    totes_run,
    wait_until,
    waiting_on,
)

from infra.local.totesys import seed
from totes import cycle, ops

pytestmark = pytest.mark.slow


def test_a_cycle_started_while_another_runs_exits_cleanly_without_an_alert(
    isolated, sns_queue, tmp_path
):
    conn = isolated.totesys()
    try:
        seed(conn, scale=0.05, end=date(2024, 11, 1))
    finally:
        conn.close()
    topic, queue_url = sns_queue
    home = tmp_path / "home"

    # The first cycle's dbt waits on the raw tables the test holds, so the first cycle is
    # surely still running when the second starts; the hold ends once the second has either
    # finished or started a cycle of its own.
    hold, second = isolated.warehouse(), None
    first = totes_run(isolated, home, tmp_path / "first.log", ALERT_TOPIC_ARN=topic)
    try:
        wait_until(lambda: dbt_build_processes(first), "the first cycle's dbt build")
        hold_raw_tables(hold)
        wait_until(lambda: waiting_on(hold), "the first cycle's dbt to wait on raw")
        second = totes_run(isolated, home, tmp_path / "second.log", ALERT_TOPIC_ARN=topic)
        wait_until(
            lambda: (
                second.poll() is not None
                or "cycle started" in (tmp_path / "second.log").read_text()
            ),
            "the second cycle to exit or start",
        )
        hold.close()
        second_code = second.wait(timeout=900)
        first_code = first.wait(timeout=900)
    finally:
        with suppress(Exception):  # closed already, unless the test failed before that
            hold.close()
        for process in (first, second):
            if process is not None:
                process.kill()
    printed = {n: (tmp_path / f"{n}.log").read_text() for n in ("first", "second")}

    assert (first_code, second_code) == (0, 0), printed
    assert "another cycle is running" in printed["second"]
    logged = [json.loads(line) for line in printed["second"].splitlines() if line.startswith("{")]
    assert [e["message"] for e in logged if e.get("level") == "ERROR"] == [], printed["second"]
    assert any(e["message"] == "another cycle is running" for e in logged)
    conn = isolated.warehouse()
    try:
        runs = conn.run("select status from ops.cycle_runs")
    finally:
        conn.close()
    assert runs == [["succeeded"]], "exactly one cycle ran; the other recorded nothing"
    assert alerts(isolated, queue_url) == []

    again = cycle.run_cycle(isolated.settings.with_(alert_topic_arn=topic), dbt_docs=False)
    assert again.ok, again.describe()
    assert_raw_and_marts_match_the_source(isolated)
    assert alerts(isolated, queue_url) == []


def test_the_cycle_lock_shares_its_key_with_no_other_lock_of_the_project():
    """Advisory lock keys are per database: a shared key would make publish wait on the cycle
    that runs it."""
    root = Path(__file__).resolve().parents[2]
    keys: dict[int, list[str]] = {}
    for package in ("runtime", "ingest", "lambda_loader", "publish", "totes", "infra"):
        for path in (root / package).rglob("*.py"):
            if "cdk.out" in path.parts:
                continue
            for name, value in re.findall(r"^(\w+) = (7_412_\d+)", path.read_text(), re.M):
                keys.setdefault(int(value), []).append(f"{path.relative_to(root)}:{name}")
    assert keys[ops.CYCLE_LOCK] == ["totes/ops.py:CYCLE_LOCK"]
    assert {k: v for k, v in keys.items() if len(v) > 1} == {}


def test_a_manual_load_never_changes_raw_under_a_running_cycle(isolated):
    """`totes load` on its own takes the cycle lock: while a cycle holds it, the load refuses
    with a clear line and loads nothing (raw must not change under that cycle's dbt build);
    once the cycle ends, the same command loads."""
    import subprocess
    import sys

    from ingest.extract import run_extract

    seed(isolated.totesys(), scale=0.01, end=date(2023, 1, 1))
    assert run_extract(isolated.settings).committed
    holder = isolated.warehouse()
    assert ops.try_cycle_lock(holder)

    def totes_load() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "totes.cli", "load"],
            env=isolated.env(), capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip

    refused = totes_load()
    assert refused.returncode == 1, refused.stderr
    assert f"totes load: {cycle.ANOTHER_CYCLE}: nothing loaded" in refused.stderr
    assert holder.run("select count(*) from pg_catalog.pg_tables where schemaname = 'raw'") == [[0]]

    holder.close()  # the cycle ends: its session, and with it the lock, is gone
    loaded = totes_load()
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout.splitlines()[-1])["loaded"] == [1]
