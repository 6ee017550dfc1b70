"""The loader carries every extracted row into raw exactly, once, in manifest order."""

from __future__ import annotations

import pyarrow as pa
import pytest
from support.loader_lake import TablePart, arrow_table, file_keys, put_extract
from support.loader_rows import EDGE, N, edge_rows, sales_part

from lambda_loader.handler import lambda_handler
from lambda_loader.load import run_load


def raw_rows(conn, table: str, columns: list[str], order: str = "1") -> list[list]:
    names = ", ".join(f'"{c}"' for c in columns)
    return conn.run(f'SELECT {names} FROM raw."{table}" ORDER BY {order}')


def test_every_value_arrives_identical_to_the_source(isolated):
    data = arrow_table(EDGE, edge_rows())
    put_extract(
        isolated.s3(), isolated.settings.ingestion_bucket, 1, [TablePart("edge", EDGE, [data])]
    )

    result = run_load(isolated.settings)

    assert result.loaded == [1] and result.rows == {"edge": N}
    conn = isolated.warehouse()
    names = [c[0] for c in EDGE]
    expected = [[row[n] for n in names] for row in data.to_pylist()]
    assert raw_rows(conn, "edge", names) == expected
    # Typed equality above already covers the instant; this proves the stored text form too.
    stamps = conn.run("SELECT to_char(stamp, 'YYYY-MM-DD HH24:MI:SS.MS') FROM raw.edge ORDER BY id")
    assert [s[0] for s in stamps[:3]] == [
        "2024-01-01 00:00:00.000",
        "2024-01-01 00:00:00.001",
        "2024-01-01 23:59:59.999",
    ]
    assert conn.run("SELECT count(*) FROM raw.edge WHERE name = ''")[0][0] == 1
    assert conn.run("SELECT count(*) FROM raw.edge WHERE name IS NULL")[0][0] == 1


def test_raw_columns_take_the_contracts_types(isolated):
    put_extract(
        isolated.s3(),
        isolated.settings.ingestion_bucket,
        1,
        [TablePart("edge", EDGE, [arrow_table(EDGE, edge_rows())])],
    )
    run_load(isolated.settings)

    types = isolated.warehouse().run(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = 'raw.edge'::regclass AND attnum > 0 ORDER BY attnum"
    )
    assert [(n, t) for n, t, _ in types] == [
        ("id", "integer"),
        ("name", "text"),
        ("small", "smallint"),
        ("big", "bigint"),
        ("money", "numeric(10,2)"),
        ("stamp", "timestamp(3) without time zone"),
        ("flag", "boolean"),
        ("day", "date"),
        ("kind", "text"),
        ("code", "text"),
        ("_manifest_seq", "bigint"),
        ("_run_id", "text"),
        ("_source_file", "text"),
        ("_loaded_at", "timestamp with time zone"),
    ]
    assert [n for n, _, not_null in types if not_null] == [
        "_manifest_seq",
        "_run_id",
        "_source_file",
        "_loaded_at",
    ]


def test_lineage_ledger_and_table_entries_describe_the_manifest(isolated):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    empty = TablePart(
        "currency",
        [("currency_id", "integer", pa.int32(), False)],
        [],
        watermark_low="2026-11-25 22:25:00.000",
    )
    doc = put_extract(s3, bucket, 1, [sales_part(1, 500, parts=2), empty])

    run_load(isolated.settings)

    conn = isolated.warehouse()
    lineage = conn.run(
        "SELECT _manifest_seq, _run_id, _source_file, count(*), count(DISTINCT _loaded_at) "
        "FROM raw.sales_order GROUP BY 1, 2, 3 ORDER BY 3"
    )
    assert lineage == [[1, doc["run_id"], key, 250, 1] for key in file_keys(doc, "sales_order")]
    ledger = conn.run("SELECT manifest_key, seq, run_id, rows, status FROM raw._manifest_ledger")
    assert ledger == [["_manifests/0000000001.json", 1, doc["run_id"], 500, "loaded"]]
    tables = conn.run(
        "SELECT table_name, rows, watermark_low::text, watermark_high::text, "
        "loaded_at = (SELECT loaded_at FROM raw._manifest_ledger) "
        "FROM raw._manifest_tables ORDER BY table_name"
    )
    assert tables == [
        ["currency", 0, "2026-11-25 22:25:00", "2026-11-25 22:30:00", True],
        ["sales_order", 500, None, "2026-11-25 22:30:00", True],
    ]
    assert conn.run("SELECT count(*) FROM raw.currency")[0][0] == 0


def test_loading_the_same_manifests_again_changes_nothing(isolated):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    put_extract(s3, bucket, 1, [sales_part(1, 300)])
    put_extract(s3, bucket, 2, [sales_part(301, 200)])
    first = run_load(isolated.settings)
    conn = isolated.warehouse()
    snapshot = conn.run("SELECT * FROM raw.sales_order ORDER BY sales_order_id")
    ledger = conn.run("SELECT * FROM raw._manifest_ledger ORDER BY seq")

    again = run_load(isolated.settings)
    s3_event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "s3": {"bucket": {"name": bucket}, "object": {"key": "_manifests/0000000001.json"}},
            }
        ]
    }
    monkey_env = isolated.env()
    redelivered = _handler_with_env(monkey_env, s3_event)

    assert first.loaded == [1, 2] and first.rows == {"sales_order": 500}
    assert again.loaded == [] and again.rows == {}
    assert redelivered["loaded"] == []
    assert conn.run("SELECT * FROM raw.sales_order ORDER BY sales_order_id") == snapshot
    assert conn.run("SELECT * FROM raw._manifest_ledger ORDER BY seq") == ledger


def test_manifests_load_oldest_first_and_uncommitted_files_are_ignored(isolated):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    put_extract(s3, bucket, 2, [sales_part(101, 10)])
    put_extract(s3, bucket, 1, [sales_part(1, 10)])
    # A data file of a run that never committed its manifest: not the loader's business.
    s3.put_object(
        Bucket=bucket,
        Key="totesys/sales_order/2026/11/25/orphan-00000.parquet",
        Body=b"PAR1 not really",
    )
    s3.put_object(Bucket=bucket, Key="_manifests/notes.txt", Body=b"not a manifest")

    result = run_load(isolated.settings)

    assert result.loaded == [1, 2]
    conn = isolated.warehouse()
    assert conn.run("SELECT seq FROM raw._manifest_ledger ORDER BY loaded_at, seq") == [[1], [2]]
    assert conn.run("SELECT DISTINCT _manifest_seq FROM raw.sales_order ORDER BY 1") == [[1], [2]]


def test_a_manifest_listing_no_tables_is_recorded(isolated):
    put_extract(isolated.s3(), isolated.settings.ingestion_bucket, 1, [])

    result = run_load(isolated.settings)

    assert result.loaded == [1]
    assert isolated.warehouse().run("SELECT seq, rows FROM raw._manifest_ledger") == [[1, 0]]


def test_lambda_handler_loads_everything_pending_from_a_step_functions_payload(isolated):
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    put_extract(s3, bucket, 1, [sales_part(1, 50)])

    result = _handler_with_env(isolated.env(), {"run_id": "20261125T223000000000Z-abcdef01"})

    assert result["loaded"] == [1] and result["rows"] == {"sales_order": 50}
    assert result["run_id"] == "20261125T223000000000Z-abcdef01"


def test_large_file_loads_in_many_batches(isolated):
    put_extract(isolated.s3(), isolated.settings.ingestion_bucket, 1, [sales_part(1, 150_000)])

    result = run_load(isolated.settings)

    assert result.rows == {"sales_order": 150_000}
    conn = isolated.warehouse()
    assert conn.run(
        "SELECT count(DISTINCT sales_order_id), min(sales_order_id), "
        "max(sales_order_id) FROM raw.sales_order"
    ) == [[150_000, 1, 150_000]]


def _handler_with_env(env: dict[str, str], event: dict) -> dict:
    """The handler reads its settings from the environment, as in Lambda."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("INGESTION_BUCKET", "WAREHOUSE_DSN", "AWS_ENDPOINT_URL", "ALERT_TOPIC_ARN"):
            patch.setenv(name, env[name])
        return lambda_handler(event, None)
