"""Bad input stops the load loudly, keeps what is loaded, blocks later manifests, and waits for
an operator to fix the file or skip the manifest with a reason."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest
from support.loader_lake import SALES_ORDER, TablePart, file_keys, parquet_bytes, put_extract
from support.loader_rows import sales_orders, sales_part

from lambda_loader.errors import LoadFailed
from lambda_loader.load import run_load
from runtime import lake


def _corrupt(body: bytes) -> bytes:
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]


def _retype_units_sold(doc: dict) -> None:
    """The manifest (and so the extractor's view) says one thing, the file holds another."""
    for column in doc["tables"][0]["columns"]:
        if column["name"] == "units_sold":
            column["pg_type"], column["arrow_type"] = "bigint", "int64"


def _miscount(doc: dict) -> None:
    doc["tables"][0]["files"][0]["rows"] += 1
    doc["tables"][0]["rows"] += 1


def _null_in_required(doc: dict) -> None:
    doc["tables"][0]["columns"][1]["nullable"] = False  # "note" below holds NULLs


NOTE = [*SALES_ORDER[:1], ("note", "text", pa.string(), True)]


def _bad_second_extract(s3, bucket, kind: str) -> dict:
    """Manifest 2 with one bad file, the way each kind of damage looks in the lake."""
    part = sales_part(101, 100)
    key = f"totesys/sales_order/2026/11/25/{_run_id(2)}-00000.parquet"
    good = parquet_bytes(part.parts[0])
    if kind == "corrupt":
        return put_extract(s3, bucket, 2, [part], file_bytes={key: _corrupt(good)})
    if kind == "truncated":
        return put_extract(s3, bucket, 2, [part], file_bytes={key: good[: len(good) - 100]})
    if kind == "schema_mismatch":
        return put_extract(s3, bucket, 2, [part], manifest_edit=_retype_units_sold)
    if kind == "row_count_mismatch":
        return put_extract(s3, bucket, 2, [part], manifest_edit=_miscount)
    if kind == "null_in_not_null":
        table = pa.table(
            {"sales_order_id": pa.array([1, 2], pa.int32()), "note": pa.array(["x", None])}
        )
        return put_extract(
            s3, bucket, 2, [TablePart("note", NOTE, [table])], manifest_edit=_null_in_required
        )
    if kind == "missing":
        doc = put_extract(s3, bucket, 2, [part])
        s3.delete_object(Bucket=bucket, Key=key)  # lost by something outside the pipeline
        return doc
    raise AssertionError(kind)


def _run_id(seq: int) -> str:
    from support.loader_lake import run_id_for

    return run_id_for(seq)


KINDS = [
    "corrupt",
    "truncated",
    "schema_mismatch",
    "row_count_mismatch",
    "null_in_not_null",
    "missing",
]


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_file_fails_loudly_keeps_earlier_loads_and_blocks_later_ones(isolated, kind):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    put_extract(s3, bucket, 1, [sales_part(1, 100)])
    bad = _bad_second_extract(s3, bucket, kind)
    put_extract(s3, bucket, 3, [sales_part(201, 100)])
    bad_file = file_keys(bad)[0]

    with pytest.raises(LoadFailed) as failed:
        run_load(isolated.settings)

    assert bad_file in str(failed.value)
    assert failed.value.seq == 2 and failed.value.file == bad_file
    assert failed.value.result.loaded == [1] and failed.value.result.pending == [2, 3]
    conn = isolated.warehouse()
    assert conn.run("SELECT seq FROM raw._manifest_ledger") == [[1]]
    assert conn.run("SELECT _manifest_seq, count(*) FROM raw.sales_order GROUP BY 1") == [[1, 100]]
    assert conn.run("SELECT seq, file, resolved FROM raw._load_failures") == [[2, bad_file, False]]
    with pytest.raises(LoadFailed):
        run_load(isolated.settings)  # still blocked: ordering matters more than progress
    assert conn.run("SELECT seq, attempts FROM raw._load_failures") == [[2, 2]]


def test_the_operator_skips_the_blocking_manifest_with_a_reason(isolated):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    put_extract(s3, bucket, 1, [sales_part(1, 100)])
    _bad_second_extract(s3, bucket, "corrupt")
    put_extract(s3, bucket, 3, [sales_part(201, 100)])
    blocked = _totes(isolated, "load")

    skipped = _totes(isolated, "load", "--skip", "2", "--reason", "corrupt upload, re-extracted")

    assert blocked.returncode == 1
    assert "totesys/sales_order/2026/11/25/" in blocked.stderr and "sha256" in blocked.stderr
    assert skipped.returncode == 0, skipped.stderr
    conn = isolated.warehouse()
    assert conn.run("SELECT seq, status, reason FROM raw._manifest_ledger ORDER BY seq") == [
        [1, "loaded", None],
        [2, "skipped", "corrupt upload, re-extracted"],
        [3, "loaded", None],
    ]
    assert conn.run("SELECT DISTINCT _manifest_seq FROM raw.sales_order ORDER BY 1") == [[1], [3]]
    assert conn.run("SELECT resolved, resolution FROM raw._load_failures") == [
        [True, "skipped: corrupt upload, re-extracted"]
    ]
    # The skip is in the lake too, where the extract (no warehouse) reads it.
    assert lake.skipped_seqs(s3, bucket) == {2}


def test_only_the_blocking_manifest_can_be_skipped_and_only_with_a_reason(isolated):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    _bad_second_extract(s3, bucket, "corrupt")  # seq 2 is the oldest pending
    put_extract(s3, bucket, 3, [sales_part(201, 10)])

    later = _totes(isolated, "load", "--skip", "3", "--reason", "x")
    no_reason = _totes(isolated, "load", "--skip", "2")

    assert later.returncode == 1 and "not the oldest pending manifest (2)" in later.stderr
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    assert isolated.warehouse().run("SELECT count(*) FROM raw._manifest_ledger") == [[0]]
    assert lake.skipped_seqs(s3, bucket) == set(), "a refused skip leaves no marker"


def test_a_fixed_file_loads_on_the_next_run_and_resolves_the_failure(isolated):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    doc = _bad_second_extract(s3, bucket, "truncated")
    with pytest.raises(LoadFailed):
        run_load(isolated.settings)
    # The operator restores the object the manifest describes (the one its sha256 names).
    s3.put_object(Bucket=bucket, Key=file_keys(doc)[0], Body=parquet_bytes(sales_orders(101, 100)))

    result = run_load(isolated.settings)

    assert result.loaded == [2] and result.rows == {"sales_order": 100}
    listing = _totes(isolated, "load", "--failures", "--all")
    assert "resolved (loaded)" in listing.stdout
    assert _totes(isolated, "load", "--failures").stderr.strip() == "no load failures"


def test_failures_command_lists_open_failures(isolated):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    doc = _bad_second_extract(s3, bucket, "missing")
    _totes(isolated, "load")

    listing = _totes(isolated, "load", "--failures")

    assert listing.returncode == 0
    assert "seq 2  OPEN" in listing.stdout and file_keys(doc)[0] in listing.stdout
    assert "is missing" in listing.stdout


def test_an_unreadable_manifest_fails_naming_it(isolated):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    s3.put_object(Bucket=bucket, Key="_manifests/0000000001.json", Body=b"{not json")

    with pytest.raises(LoadFailed, match=r"_manifests/0000000001.json is malformed"):
        run_load(isolated.settings)


def _totes(isolated, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "totes.cli", *args],
        env=isolated.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
