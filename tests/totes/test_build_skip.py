"""A cycle builds, tests and uploads only what can have changed: with nothing new loaded since the
newest successful build, the dbt step runs no dbt at all and, once those marts are published,
the publish step uploads nothing; the docs site is uploaded only when the project or the
warehouse's columns changed (those three are asserted in tests/totes/test_cycle.py, on its
first, idle and incremental cycles). Here: anything that could make a build or a publish differ
(a publish that failed, a relation dropped by hand, a build that failed, a changed project) is
done again."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from infra.local.totesys import seed, simulate
from totes import cycle, dbt_build

pytestmark = pytest.mark.slow


def seeded(isolated) -> None:
    conn = isolated.totesys()
    try:
        seed(conn, scale=0.02, seed=3, end=date(2024, 11, 1))
    finally:
        conn.close()


def processed_objects(isolated) -> dict[str, str]:
    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    return {
        obj["Key"]: obj["ETag"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    }


def marts_rows(isolated) -> dict[str, int]:
    conn = isolated.warehouse()
    try:
        tables = conn.run(
            "select table_name from information_schema.tables where table_schema = 'marts' "
            "and table_type = 'BASE TABLE' order by 1"
        )
        return {t: conn.run(f'select count(*) from marts."{t}"')[0][0] for [t] in tables}
    finally:
        conn.close()


def dbt_ran(result: cycle.CycleResult) -> bool:
    step = result.step("dbt")
    assert step.status == "succeeded", result.describe()
    return "unchanged_since" not in step.detail and bool(step.models)


def test_a_failed_publish_a_dropped_relation_a_failed_build_or_a_new_project_is_done_again(
    isolated, tmp_path
):
    seeded(isolated)
    runs = tmp_path / "runs"
    unpublished = cycle.run_cycle(
        isolated.settings, work_dir=runs, dbt_docs=False, fail_step="publish"
    )
    assert unpublished.failed_step == "publish" and dbt_ran(unpublished)

    published = cycle.run_cycle(isolated.settings, work_dir=runs, dbt_docs=False)

    assert published.ok, published.describe()
    assert published.step("dbt").detail["unchanged_since"] == unpublished.run_id
    assert published.step("publish").rows == sum(marts_rows(isolated).values())
    assert any(k.startswith("marts/fact_sales_order/") for k in processed_objects(isolated))

    conn = isolated.warehouse()
    try:
        conn.run("drop view marts.fact_sales_order_current")
        again = cycle.run_cycle(isolated.settings, work_dir=runs, dbt_docs=False)
        assert again.ok and dbt_ran(again), again.describe()
        assert conn.run("select to_regclass('marts.fact_sales_order_current') is not null") == [
            [True]
        ]
    finally:
        conn.close()

    source = isolated.totesys()
    try:
        simulate(source, orders=3, purchases=1, updates=1, payments_paid=1, seed=5)
    finally:
        source.close()

    def broken(args, env, log_file: Path) -> int:  # dbt ran and failed: no results, exit 2
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text("Encountered an error: the warehouse went away\n")
        return 2

    failed = cycle.run_cycle(isolated.settings, work_dir=runs, dbt_docs=False, dbt_runner=broken)
    assert failed.failed_step == "dbt", failed.describe()

    healed = cycle.run_cycle(isolated.settings, work_dir=runs, dbt_docs=False)

    assert healed.ok and dbt_ran(healed), healed.describe()
    assert healed.step("load").rows == 0, "the new rows were loaded by the failed cycle"
    nothing = cycle.run_cycle(isolated.settings, work_dir=runs, dbt_docs=False)
    assert nothing.step("dbt").detail["unchanged_since"] == healed.run_id

    # As if the project had changed since that build (a deploy): built again, unit tests too.
    conn = isolated.warehouse()
    try:
        conn.run("update ops.dbt_builds set project = 'an earlier project'")
    finally:
        conn.close()
    redeployed = cycle.run_cycle(isolated.settings, work_dir=runs, dbt_docs=False)
    assert redeployed.ok and dbt_ran(redeployed), redeployed.describe()
    assert redeployed.step("dbt").detail["unit_tests"] > 0


def test_the_project_digest_follows_every_project_file_and_nothing_dbt_writes(tmp_path):
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "m.sql").write_text("select 1")
    (project / "dbt_project.yml").write_text("name: p\n")
    before = dbt_build.project_hash(project)

    for written in ("target/manifest.json", "logs/dbt.log", ".user.yml"):
        (project / written).parent.mkdir(parents=True, exist_ok=True)
        (project / written).write_text("anything")
    assert dbt_build.project_hash(project) == before

    (project / "models" / "m.sql").write_text("select 2")
    assert dbt_build.project_hash(project) != before
    (project / "models" / "m.sql").write_text("select 1")
    (project / "macros").mkdir()
    (project / "macros" / "x.sql").write_text("{% macro x() %}{% endmacro %}")
    assert dbt_build.project_hash(project) != before
    assert dbt_build.project_hash(dbt_build.PROJECT_DIR) != before
