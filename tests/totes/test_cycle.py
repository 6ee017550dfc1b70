"""`totes run`: extract → load → dbt build → publish on the real local stack, in that order,
stopping at the first failure with an alert, and recovering on the next cycle."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import date

import pytest
from rich.console import Console
from support.cycles import alerts

from infra.local.totesys import seed, simulate
from runtime.config import Settings
from totes import cli, console, cycle, dbt_build, status

pytestmark = pytest.mark.slow
FACT_SOURCES = {
    "fact_sales_order": "sales_order",
    "fact_purchase_order": "purchase_order",
    "fact_payment": "payment",
}


def seeded(isolated) -> dict[str, int]:
    """A small totesys; returns the row versions per fact's source table."""
    conn = isolated.totesys()
    try:
        seed(conn, scale=0.05, end=date(2024, 11, 1))
        return {
            t: conn.run(f'select count(*) from public."{t}"')[0][0] for t in FACT_SOURCES.values()
        }
    finally:
        conn.close()


def fact_counts(isolated) -> dict[str, int]:
    conn = isolated.warehouse()
    try:
        return {f: conn.run(f'select count(*) from marts."{f}"')[0][0] for f in FACT_SOURCES}
    finally:
        conn.close()


def lake_objects(isolated, prefix: str = "") -> dict[str, str]:
    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = obj["ETag"]
    return found


def test_a_cycle_brings_the_marts_in_line_with_the_source_and_a_rerun_adds_nothing(
    isolated, tmp_path
):
    versions = seeded(isolated)
    runs = tmp_path / "runs"

    first = cycle.run_cycle(isolated.settings, work_dir=runs)
    assert first.ok, first.describe()
    assert [o.step for o in first.steps] == ["extract", "load", "dbt", "publish"]
    assert fact_counts(isolated) == {f: versions[s] for f, s in FACT_SOURCES.items()}
    assert first.step("dbt").models and first.step("dbt").tests
    assert lake_objects(isolated, "docs/"), "the dbt docs site is published"
    lake_before = lake_objects(isolated)

    again = cycle.run_cycle(isolated.settings, work_dir=runs)
    assert again.ok, again.describe()
    assert fact_counts(isolated) == {f: versions[s] for f, s in FACT_SOURCES.items()}
    assert again.step("publish").rows == 0
    assert lake_objects(isolated) == lake_before, "no new fact rows, no changed members, no docs"
    # Nothing new: no dbt process, and the marts already published (tests/totes/test_build_skip.py)
    assert [again.step(s).detail.get("unchanged_since") for s in ("dbt", "publish")] == [
        first.run_id,
        first.run_id,
    ]
    assert (again.step("dbt").models, again.step("dbt").tests) == (0, 0)
    assert not (runs / again.run_id / "dbt").exists()

    conn = isolated.totesys()
    try:
        changes = simulate(conn, orders=10, purchases=4, updates=3, payments_paid=3, seed=11)
    finally:
        conn.close()
    later = cycle.run_cycle(isolated.settings, work_dir=runs)
    assert later.ok, later.describe()
    assert later.step("dbt").models and "unchanged_since" not in later.step("dbt").detail
    # The same project: its unit tests passed in the first build and are not run again.
    assert first.step("dbt").detail["unit_tests"] > 0
    assert later.step("dbt").detail["unit_tests"] == 0
    unit_tests = first.step("dbt").detail["unit_tests"]
    # The incremental build runs the tests on what its new rows reach, never the unit tests.
    assert 0 < later.step("dbt").tests <= first.step("dbt").tests - unit_tests
    expected = {f: versions[s] + len(changes.ids(s)) for f, s in FACT_SOURCES.items()}
    assert fact_counts(isolated) == expected
    after = lake_objects(isolated)
    assert {k: after[k] for k in lake_before} == lake_before, "no object rewritten"
    docs = {k for k in after if k.startswith("docs/")}
    assert docs == {k for k in lake_before if k.startswith("docs/")}, "same columns: same site"
    assert later.step("publish").detail["docs"] == 0

    report = status.gather(isolated.settings)
    assert [r.run_id for r in report.runs[:3]] == [later.run_id, again.run_id, first.run_id]
    assert {r.status for r in report.runs} == {"succeeded"}
    assert {m.table: m.rows for m in report.marts if m.table in FACT_SOURCES} == expected
    assert {s.table for s in report.sources} >= set(FACT_SOURCES.values())
    out = Console(file=io.StringIO(), width=240)
    console.render_status(report, out)
    printed = out.file.getvalue()
    assert later.run_id in printed
    assert "fact_sales_order" in printed
    assert "sales_order" in printed


@pytest.mark.parametrize("failing", cycle.STEP_NAMES)
def test_a_failing_step_stops_the_cycle_alerts_and_the_next_cycle_recovers(
    isolated, sns_queue, tmp_path, failing
):
    versions = seeded(isolated)
    topic, queue_url = sns_queue
    settings = isolated.settings.with_(alert_topic_arn=topic)
    runs = tmp_path / "runs"

    failed = cycle.run_cycle(settings, fail_step=failing, work_dir=runs, dbt_docs=False)

    assert failed.exit_code != 0
    assert failed.failed_step == failing
    assert "InjectedFailure" in (failed.error or "")
    position = cycle.STEP_NAMES.index(failing)
    assert [o.status for o in failed.steps] == (
        ["succeeded"] * position + ["failed"] + ["not run"] * (3 - position)
    )
    [alert] = alerts(isolated, queue_url)
    assert alert["run_id"] == failed.run_id
    assert alert["failed_step"] == failing
    assert "injected failure" in alert["error"]
    assert failing in alert["subject"]
    last = status.gather(settings).runs[0]
    assert (last.run_id, last.status, last.failed_step) == (failed.run_id, "failed", failing)

    recovered = cycle.run_cycle(settings, work_dir=runs, dbt_docs=False)
    assert recovered.ok, recovered.describe()
    assert fact_counts(isolated) == {f: versions[s] for f, s in FACT_SOURCES.items()}
    assert alerts(isolated, queue_url) == []


def test_totes_run_exits_non_zero_naming_the_failing_step(isolated, tmp_path):
    env = {**isolated.env(), "TOTES_HOME": str(tmp_path), cycle.FAIL_STEP_ENV: "extract"}

    done = subprocess.run(
        [sys.executable, "-m", "totes.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    errors = [json.loads(line) for line in done.stdout.splitlines() if '"ERROR"' in line]
    assert any(e.get("step") == "extract" and e["message"] == "cycle failed" for e in errors)
    assert "failed at extract" in done.stderr


def test_intervals_read_like_people_write_them():
    assert cli.parse_interval("5m") == 300
    assert cli.parse_interval("30s") == 30
    assert cli.parse_interval("1h") == 3600
    assert cli.parse_interval("90") == 90
    with pytest.raises(Exception, match="not an interval"):
        cli.parse_interval("soon")


def test_an_unknown_failure_step_is_refused():
    with pytest.raises(ValueError, match="fail_step"):
        cycle.run_cycle(Settings(ingestion_bucket="unused"), fail_step="transform")


def test_dbt_results_count_models_and_tests_and_name_the_failures(tmp_path):
    results = [
        {"unique_id": "model.totes_warehouse.fact_payment", "status": "success", "message": ""},
        {"unique_id": "model.totes_warehouse.dim_date", "status": "error", "message": "boom\nmore"},
        {"unique_id": "test.totes_warehouse.not_null_x", "status": "fail", "message": "1 row"},
        {"unique_id": "unit_test.totes_warehouse.m.t", "status": "pass", "message": None},
        {"unique_id": "test.totes_warehouse.freshness", "status": "warn", "message": "late"},
        {"unique_id": "seed.totes_warehouse.iso_4217", "status": "success", "message": ""},
    ]
    path = tmp_path / "run_results.json"
    path.write_text(json.dumps({"results": results, "elapsed_time": 1.5}))

    parsed = dbt_build.parse_run_results(path, tmp_path)

    assert (parsed.models, parsed.tests, parsed.seeds, parsed.warnings) == (2, 3, 1, 1)
    assert parsed.failures == [
        "model.totes_warehouse.dim_date (error: boom more)",
        "test.totes_warehouse.not_null_x (fail: 1 row)",
    ]


def test_a_cycle_without_the_publish_step_generates_no_docs_site(tmp_path):
    asked: dict[str, bool] = {}

    def dbt(context: cycle.CycleContext) -> cycle.StepReport:
        asked[context.run_id] = context.dbt_docs
        return cycle.StepReport()

    def publish(context: cycle.CycleContext) -> cycle.StepReport:
        return cycle.StepReport()

    # No warehouse: the cycle only logs that it cannot record; the steps are these stand-ins.
    settings = Settings(ingestion_bucket="unused")
    alone = cycle.run_cycle(settings, steps=[cycle.Step("dbt", dbt)], work_dir=tmp_path)
    both = cycle.run_cycle(
        settings, steps=[cycle.Step("dbt", dbt), cycle.Step("publish", publish)], work_dir=tmp_path
    )

    assert (asked[alone.run_id], asked[both.run_id]) == (False, True)


# ---- a cycle builds and tests what its new rows reach, and nothing else -------------------------


def built_models(result, runs) -> set[str]:
    """The models the cycle's dbt step built, by name (its run_results.json; none: dbt did
    not run)."""
    results = runs / result.run_id / "dbt" / "target" / "run_results.json"
    if not results.exists():
        return set()
    payload = json.loads(results.read_text())
    return {
        r["unique_id"].rsplit(".", 1)[-1]
        for r in payload["results"]
        if r["unique_id"].startswith("model.")
    }


def run(settings, runs, **kwargs):
    """One cycle, its dbt target kept under `runs/<run_id>/dbt` (the newest few are)."""
    return cycle.run_cycle(settings, work_dir=runs, dbt_docs=False, **kwargs)


def warehouse_value(isolated, sql: str, **params):
    conn = isolated.warehouse()
    try:
        return conn.run(sql, **params)
    finally:
        conn.close()


def source_change(isolated, sql: str) -> None:
    conn = isolated.totesys()
    try:
        conn.run(sql)
    finally:
        conn.close()


NOW = "(now() at time zone 'UTC')::timestamp(3)"


def test_a_change_only_in_staff_reaches_dim_staff_and_every_fact_that_joins_it(isolated, tmp_path):
    seeded(isolated)
    runs = tmp_path / "runs"
    assert run(isolated.settings, runs).ok

    source_change(
        isolated,
        f"update staff set first_name = 'Renamed', last_updated = {NOW}"
        " where staff_id = (select min(staff_id) from staff)",
    )
    staff_only = run(isolated.settings, runs)

    assert staff_only.ok, staff_only.describe()
    assert staff_only.step("dbt").detail["built"] == ["staff"]
    [[name]] = warehouse_value(
        isolated, "select first_name from marts.dim_staff order by staff_id limit 1"
    )
    assert name == "Renamed"
    built = built_models(staff_only, runs)
    # Everything downstream of staff: its staging and versions, the dimension, and the facts
    # whose foreign keys name dim_staff (their relationships tests run after it).
    assert {"int_staff__versions", "dim_staff", "fact_sales_order", "fact_purchase_order"} <= built
    # Nothing the change cannot reach: no other source's versions, no dimension of theirs.
    assert not built & {"int_sales_order__versions", "int_payment__versions", "dim_design"}

    source_change(
        isolated,
        f"update department set department_name = 'Renamed dept', last_updated = {NOW}"
        " where department_id = (select department_id from staff order by staff_id limit 1)",
    )
    department_only = run(isolated.settings, runs)
    assert department_only.ok, department_only.describe()
    assert department_only.step("dbt").detail["built"] == ["department"]
    assert "dim_staff" in built_models(department_only, runs)
    [[department]] = warehouse_value(
        isolated, "select department_name from marts.dim_staff order by staff_id limit 1"
    )
    assert department == "Renamed dept"


def test_a_cycle_with_nothing_new_runs_no_dbt_and_the_next_change_is_still_built(
    isolated, tmp_path
):
    versions = seeded(isolated)
    runs = tmp_path / "runs"
    assert run(isolated.settings, runs).ok

    idle = run(isolated.settings, runs)

    assert idle.ok, idle.describe()
    assert "unchanged_since" in idle.step("dbt").detail  # totes/build_record.py: dbt skipped
    assert (idle.step("dbt").models, idle.step("dbt").tests) == (0, 0)
    assert idle.step("publish").rows == 0
    assert fact_counts(isolated) == {f: versions[s] for f, s in FACT_SOURCES.items()}

    conn = isolated.totesys()
    try:
        changes = simulate(conn, orders=3, purchases=2, updates=1, payments_paid=1, seed=5)
    finally:
        conn.close()
    busy = run(isolated.settings, runs)
    assert busy.ok, busy.describe()
    expected = {f: versions[s] + len(changes.ids(s)) for f, s in FACT_SOURCES.items()}
    assert fact_counts(isolated) == expected


def test_rows_loaded_by_a_cycle_whose_dbt_failed_are_built_by_the_next_cycle(isolated, tmp_path):
    """The build covers every manifest since the last successful build, not the manifests the
    cycle itself loaded: here the cycle that loads them fails before dbt, and the next one
    loads nothing and still builds them."""
    versions = seeded(isolated)
    runs = tmp_path / "runs"
    assert run(isolated.settings, runs).ok
    conn = isolated.totesys()
    try:
        changes = simulate(conn, orders=4, purchases=2, updates=2, payments_paid=1, seed=9)
    finally:
        conn.close()

    failed = run(isolated.settings, runs, fail_step="dbt")
    assert failed.failed_step == "dbt"
    assert failed.step("load").rows, "the changes were loaded by the failed cycle"

    recovered = run(isolated.settings, runs)

    assert recovered.ok, recovered.describe()
    assert recovered.step("load").rows == 0
    assert set(recovered.step("dbt").detail["built"]) >= set(FACT_SOURCES.values())
    expected = {f: versions[s] + len(changes.ids(s)) for f, s in FACT_SOURCES.items()}
    assert fact_counts(isolated) == expected


def test_the_full_tests_find_what_a_cycle_does_not_look_at_and_alert(isolated, sns_queue, tmp_path):
    """A cycle's tests check the rows it brought; an old fact row removed by hand is only
    found by the full tests (`totes test --full`), which fail, alert and exit 1."""
    seeded(isolated)
    topic, queue_url = sns_queue
    settings = isolated.settings.with_(alert_topic_arn=topic)
    runs = tmp_path / "runs"
    assert run(settings, runs).ok
    warehouse_value(
        isolated,
        "delete from marts.fact_payment where payment_record_id ="
        " (select min(payment_record_id) from marts.fact_payment)",
    )
    conn = isolated.totesys()
    try:
        simulate(conn, orders=2, purchases=1, updates=0, payments_paid=0, seed=3)
    finally:
        conn.close()

    scoped = run(settings, runs)
    assert scoped.ok, "the cycle tests its new rows only: the old row is not its business"

    done = subprocess.run(
        [sys.executable, "-m", "totes.cli", "test", "--full"],
        env={**isolated.env(), "ALERT_TOPIC_ARN": topic, "TOTES_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "assert_fact_versions_match_raw" in done.stderr
    [alert] = alerts(isolated, queue_url)
    assert alert["failed_step"] == "full tests"
    assert "assert_fact_versions_match_raw" in alert["error"]
