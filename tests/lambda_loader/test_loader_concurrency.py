"""Loaders running at once (threads or processes) load each manifest exactly once; a crash
mid-COPY leaves no part of a manifest behind, and the next run loads it whole."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from support.loader_lake import put_extract
from support.loader_rows import sales_part

from lambda_loader.errors import LoadFailed
from lambda_loader.load import APPLICATION_NAME, run_load

MANIFESTS = 5
ROWS = 2_000


def _five_extracts(isolated) -> None:
    for seq in range(1, MANIFESTS + 1):
        put_extract(
            isolated.s3(),
            isolated.settings.ingestion_bucket,
            seq,
            [sales_part((seq - 1) * ROWS + 1, ROWS, parts=2)],
        )


def _assert_each_manifest_once(conn) -> None:
    assert conn.run("SELECT seq FROM raw._manifest_ledger ORDER BY seq") == [
        [s] for s in range(1, MANIFESTS + 1)
    ]
    assert conn.run("SELECT count(*), count(DISTINCT sales_order_id) FROM raw.sales_order") == [
        [MANIFESTS * ROWS, MANIFESTS * ROWS]
    ]


def test_concurrent_threads_load_each_manifest_once(isolated):
    _five_extracts(isolated)
    isolated.settings.client("s3")  # boto3's default session is built once, not by 4 threads
    start = threading.Barrier(4)
    results, errors = [], []

    def loader() -> None:
        start.wait()
        try:
            results.append(run_load(isolated.settings))
        except Exception as err:  # collected: the assertion below shows it
            errors.append(err)

    threads = [threading.Thread(target=loader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(s for r in results for s in r.loaded) == list(range(1, MANIFESTS + 1))
    _assert_each_manifest_once(isolated.warehouse())


# The loader Lambda's own entry point: in AWS, Step Functions and a redelivered S3 event can
# invoke it at once. (`totes load` refuses while another holds the cycle lock: tests/faults.)
_LAMBDA = "from lambda_loader.handler import lambda_handler; lambda_handler({}, None)"


def test_concurrent_processes_load_each_manifest_once(isolated):
    _five_extracts(isolated)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LAMBDA],
            env=isolated.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [p.communicate(timeout=300) for p in procs]

    assert [p.returncode for p in procs] == [0, 0, 0], outcomes
    _assert_each_manifest_once(isolated.warehouse())


# Loads manifest 1, and on manifest 2's second file dies mid-COPY without any cleanup.
_CRASH = """
import os, sys
from lambda_loader.load import run_load
from runtime.config import Settings

def die_mid_copy(file_key, chunk):
    if file_key.endswith("-00001.parquet") and "{run2}" in file_key and chunk == 2:
        os._exit(17)

run_load(Settings.from_env(), chunk_hook=die_mid_copy)
"""


def test_a_process_killed_mid_copy_leaves_no_partial_manifest(isolated):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    put_extract(s3, bucket, 1, [sales_part(1, 1_000)])
    doc = put_extract(s3, bucket, 2, [sales_part(1_001, 60_000, parts=2)])

    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH.format(run2=doc["run_id"])],
        env=isolated.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert crashed.returncode == 17, crashed.stderr
    conn = isolated.warehouse()
    _wait_for_backends_to_exit(conn)
    assert conn.run("SELECT seq FROM raw._manifest_ledger") == [[1]]
    assert conn.run("SELECT _manifest_seq, count(*) FROM raw.sales_order GROUP BY 1") == [
        [1, 1_000]
    ]

    result = run_load(isolated.settings)

    assert result.loaded == [2] and result.rows == {"sales_order": 60_000}
    assert conn.run("SELECT count(*), count(DISTINCT sales_order_id) FROM raw.sales_order") == [
        [61_000, 61_000]
    ]


def test_a_connection_terminated_mid_copy_loses_and_duplicates_nothing(isolated):
    put_extract(
        isolated.s3(), isolated.settings.ingestion_bucket, 1, [sales_part(1, 60_000, parts=2)]
    )
    admin = isolated.warehouse()

    def terminate_backend(file_key: str, chunk: int) -> None:
        if file_key.endswith("-00001.parquet") and chunk == 1:
            # The second file's COPY has begun; the first file's rows sit uncommitted.
            killed = admin.run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :app AND datname = current_database() "
                "AND query ILIKE 'COPY%'",
                app=APPLICATION_NAME,
            )
            assert killed == [[True]]

    with pytest.raises(LoadFailed) as failed:
        run_load(isolated.settings, chunk_hook=terminate_backend)

    assert failed.value.file is not None and failed.value.file.endswith("-00001.parquet")
    assert admin.run("SELECT count(*) FROM raw._manifest_ledger") == [[0]]
    assert admin.run("SELECT to_regclass('raw.sales_order') IS NULL") == [[True]]
    assert admin.run("SELECT seq, resolved FROM raw._load_failures") == [[1, False]]

    result = run_load(isolated.settings)

    assert result.loaded == [1]
    assert admin.run("SELECT count(*), count(DISTINCT sales_order_id) FROM raw.sales_order") == [
        [60_000, 60_000]
    ]
    assert admin.run("SELECT resolved, resolution FROM raw._load_failures") == [[True, "loaded"]]


def _wait_for_backends_to_exit(conn) -> None:
    """A killed client's backend notices the closed socket and aborts; wait for that (bounded)."""
    for _ in range(200):
        left = conn.run(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
            "AND datname = current_database()",
            app=APPLICATION_NAME,
        )
        if left == [[0]]:
            return
        threading.Event().wait(0.05)
    raise AssertionError("the killed loader's backend is still running")
