"""The lake copy of the marts: every fact row once, changed members again, nothing overwritten.

The marts are built for real (seeded totesys → raw via the test stand-in for extract + load →
`dbt build`), so these tests do not depend on the extractor; `test_cycle.py` covers the chain.
"""

from __future__ import annotations

import io
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.raw_from_source import load_raw

from infra.local.totesys import seed, simulate
from publish import glue, ledger, marts, publish
from runtime import pg_arrow
from totes import dbt_build

# One worker runs the module: every test starts from the same built marts (a template).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="publish-lake")]
SEED_END = date(2024, 11, 1)


class Crash(Exception):
    """Stands for the process dying at the hook's point."""


def build_marts(isolated, work: Path) -> None:
    """One 'manifest' of source changes into raw, then a real `dbt build`."""
    totesys, warehouse = isolated.totesys(), isolated.warehouse()
    try:
        load_raw(totesys, warehouse)
    finally:
        totesys.close()
        warehouse.close()
    dbt_build.run_build(isolated.settings, work, docs=False)


def seeded(isolated) -> None:
    conn = isolated.totesys()
    try:
        seed(conn, scale=0.05, end=SEED_END)
    finally:
        conn.close()


def seeded_and_built(isolated, work_dir: Path) -> None:
    """The beginning every test here shares, built once per worker (tests/support/templates.py):
    a seeded totesys, its rows in raw, the marts built from them."""
    seeded(isolated)
    build_marts(isolated, work_dir)


@pytest.fixture
def built(from_template):
    return from_template("publish", seeded_and_built)


def versioned(isolated) -> None:
    """Turn on bucket versioning, so any overwrite would leave a second version behind."""
    isolated.s3().put_bucket_versioning(
        Bucket=isolated.settings.processed_bucket,
        VersioningConfiguration={"Status": "Enabled"},
    )


def lake_rows(isolated, table: str) -> list[dict]:
    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    rows: list[dict] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"marts/{table}/"
    ):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            rows += pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def object_versions(isolated) -> Counter:
    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    versions: Counter = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            versions[version["Key"]] += 1
        for marker in page.get("DeleteMarkers", []):
            versions[marker["Key"]] += 100  # a delete is as bad as an overwrite
    return versions


def mart_keys(isolated, table: str, key: str) -> list[int]:
    conn = isolated.warehouse()
    try:
        return sorted(r[0] for r in conn.run(f'select "{key}" from marts."{table}"'))
    finally:
        conn.close()


def mart_rows(isolated, table: str) -> list[dict]:
    conn = isolated.warehouse()
    try:
        return pg_arrow.read_table(
            conn, "marts", table, pg_arrow.table_columns(conn, "marts", table)
        ).to_pylist()
    finally:
        conn.close()


def test_each_fact_row_is_published_once_and_changed_members_again(built, tmp_path):
    isolated = built  # seeded, marts built (the first build)
    versioned(isolated)
    first = publish.publish(isolated.settings, run_id="run-1")

    conn = isolated.totesys()
    try:
        simulate(conn, orders=15, purchases=5, updates=4, payments_paid=4, address_moves=2,
                 department_renames=1, new_designs=2, seed=7)  # fmt: skip
    finally:
        conn.close()
    build_marts(isolated, tmp_path / "build2")
    second = publish.publish(isolated.settings, run_id="run-2")
    third = publish.publish(isolated.settings, run_id="run-3")

    for fact, key in marts.FACTS.items():
        in_lake = sorted(row[key] for row in lake_rows(isolated, fact))
        assert in_lake == mart_keys(isolated, fact, key), fact
        assert first.per_table()[fact]["rows"] > 0
        assert second.per_table()[fact]["rows"] > 0, f"{fact}: the simulate added versions"
    for dim, key in marts.DIMENSIONS.items():
        latest: dict = {}
        for row in sorted(lake_rows(isolated, dim), key=lambda r: r[publish.PUBLISHED_AT]):
            member = row.pop(key)  # before building the value, which must not hold the key
            latest[member] = {k: v for k, v in row.items() if k != publish.PUBLISHED_AT}
        current = {row.pop(key): row for row in mart_rows(isolated, dim)}
        assert latest == current, f"{dim}: the newest published version of every member"
    assert {"dim_location", "dim_counterparty", "dim_design"} <= set(second.per_table())
    assert third.files == 0, "nothing changed since the last publish"
    assert set(object_versions(isolated).values()) == {1}, "no object written twice"
    conn = isolated.warehouse()
    try:
        through = ledger.published_through(conn)
    finally:
        conn.close()
    assert through == {
        fact: max(mart_keys(isolated, fact, key)) for fact, key in marts.FACTS.items()
    }


def test_every_mart_table_is_registered_in_glue_with_its_partitions(built):
    isolated = built  # seeded, marts built
    database = f"marts_{uuid.uuid4().hex[:10]}"  # the Glue catalog outlives the test
    settings = isolated.settings.with_(glue_database=database)
    today = date(2026, 1, 2)
    publish.publish(settings, run_id="run-1", today=today)

    glue_client = settings.client("glue")
    tables = {t["Name"]: t for t in glue_client.get_tables(DatabaseName=database)["TableList"]}
    # and deletions, registered before its first file so readers can anti-join it already
    assert set(tables) == {*marts.FACTS, *marts.DIMENSIONS, *marts.DELETIONS}
    sales = tables["fact_sales_order"]
    columns = {c["Name"]: c["Type"] for c in sales["StorageDescriptor"]["Columns"]}
    assert columns["unit_price"] == "decimal(10,2)"
    assert columns["created_time"] == "string"  # Athena has no time type
    assert sales["StorageDescriptor"]["Location"] == glue.table_location(
        settings.processed_bucket, "fact_sales_order"
    )
    partitions = glue_client.get_partitions(DatabaseName=database, TableName="fact_sales_order")
    assert [p["Values"] for p in partitions["Partitions"]] == [["2026-01-02"]]
    assert partitions["Partitions"][0]["StorageDescriptor"]["Location"].endswith("/2026/01/02/")


def test_a_publish_that_crashes_after_uploading_finishes_without_duplicates(built):
    isolated = built  # seeded, marts built
    versioned(isolated)

    def crash_on(table: str):
        def hook(file: publish.PublishedFile) -> None:
            if file.table == table:
                raise Crash(f"killed after uploading {file.key}")

        return hook

    # Killed after the dim file's upload, then after a fact file's, before their ledgers moved.
    with pytest.raises(Crash):
        publish.publish(isolated.settings, run_id="run-1", after_upload=crash_on("dim_staff"))
    with pytest.raises(Crash):
        publish.publish(
            isolated.settings, run_id="run-2", after_upload=crash_on("fact_purchase_order")
        )
    retried = publish.publish(isolated.settings, run_id="run-3")

    finished = {f.table: f for f in retried.objects if f.already_there}
    assert "fact_purchase_order" in finished, "the retry found the crashed upload and kept it"
    for fact, key in marts.FACTS.items():
        in_lake = [row[key] for row in lake_rows(isolated, fact)]
        assert sorted(in_lake) == mart_keys(isolated, fact, key), fact
    staff = [row["staff_id"] for row in lake_rows(isolated, "dim_staff")]
    assert Counter(staff).most_common(1)[0][1] == 1, "dim_staff published once, not re-planned"
    assert set(object_versions(isolated).values()) == {1}
    assert publish.publish(isolated.settings, run_id="run-4").files == 0
