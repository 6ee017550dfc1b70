"""A killed cycle takes its dbt with it, and the next cycle marks it `abandoned` and catches up."""

from __future__ import annotations

import os
import signal
from datetime import date

import pytest
from support.cycles import (
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
from totes import cycle, ops

pytestmark = pytest.mark.slow


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
