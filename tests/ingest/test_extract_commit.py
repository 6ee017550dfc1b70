"""A run commits by writing its manifest last, once per seq, whatever crashes or races."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading

import pytest
from support.extract_lake import (
    OPTIONS,
    data_keys,
    entry,
    lake,
    manifests,
    settle,
    source_versions,
    versions,
)

from infra.local.totesys.seed import seed
from infra.local.totesys.simulate import simulate
from ingest.extract import run_extract

CRASH_AFTER_FILES = """
import os
from ingest.extract import ExtractOptions, run_extract
from runtime.config import Settings
run_extract(Settings.from_env(), options=ExtractOptions(margin_s=0.0),
            after_files=lambda: os._exit(17))
"""


@pytest.fixture
def totesys(isolated):
    conn = isolated.totesys()
    seed(conn, scale=0.02, seed=5)
    settle(conn)
    yield conn
    conn.close()


def test_the_manifest_follows_the_contract(isolated, totesys):
    result = run_extract(isolated.settings, options=OPTIONS)
    s3, bucket = lake(isolated)
    [manifest] = manifests(s3, bucket)
    assert (manifest["format"], manifest["seq"], manifest["run_id"], manifest["source"]) == (
        "totes-manifest/1", 1, result.run_id, "totesys",
    )  # fmt: skip
    sales = entry(manifest, "sales_order")
    assert sales["primary_key"] == ["sales_order_id"]
    assert sales["columns"][7] == {
        "name": "unit_price", "pg_type": "numeric(10,2)", "arrow_type": "decimal128(10, 2)",
        "nullable": False,
    }  # fmt: skip
    for file in sales["files"]:
        body = s3.get_object(Bucket=bucket, Key=file["key"])["Body"].read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (file["bytes"], file["sha256"])
        assert file["key"].startswith("totesys/sales_order/")
        assert file["key"].endswith(f"{result.run_id}-00000.parquet")
    assert sales["rows"] == sum(f["rows"] for f in sales["files"])


def test_large_tables_are_split_into_several_files(isolated, totesys):
    from dataclasses import replace

    run_extract(isolated.settings, options=replace(OPTIONS, rows_per_file=100))
    [manifest] = manifests(*lake(isolated))
    sales = entry(manifest, "sales_order")
    assert len(sales["files"]) > 1
    assert sales["rows"] == totesys.run("select count(*) from sales_order")[0][0]


def test_a_crash_between_data_files_and_manifest_loses_nothing(isolated, totesys):
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_FILES], env=isolated.env(), capture_output=True
    )
    s3, bucket = lake(isolated)
    orphans = data_keys(s3, bucket)
    assert crashed.returncode == 17 and orphans and manifests(s3, bucket) == []
    rerun = run_extract(isolated.settings, options=OPTIONS)
    [manifest] = manifests(s3, bucket)
    assert rerun.seq == 1
    assert all(t["watermark"]["low"] is None for t in manifest["tables"])
    assert set(versions(s3, bucket, "sales_order", "sales_order_id")) == source_versions(
        totesys, "sales_order", "sales_order_id"
    )
    listed = {f["key"] for t in manifest["tables"] for f in t["files"]}
    assert not listed & set(orphans)


def test_two_concurrent_runs_commit_each_change_once(isolated, totesys):
    both_wrote_files = threading.Barrier(2, timeout=60)
    results = []

    def run() -> None:
        results.append(
            run_extract(isolated.settings, options=OPTIONS, after_files=both_wrote_files.wait)
        )

    for _ in range(2):  # a full first run, then an incremental one, each raced
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        simulate(totesys, orders=4, updates=2, seed=len(results))
        settle(totesys)
    s3, bucket = lake(isolated)
    assert sorted((r.seq, r.committed) for r in results) == [
        (1, False), (1, True), (2, False), (2, True),
    ]  # fmt: skip
    assert [m["seq"] for m in manifests(s3, bucket)] == [1, 2]
    extracted = versions(s3, bucket, "sales_order", "sales_order_id")
    assert len(extracted) == len(set(extracted))
