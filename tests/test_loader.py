"""The loader carries every extracted row into raw exactly, once, in manifest order."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from loader_lake import SALES_ORDER, TablePart, arrow_table, file_keys, put_extract

from lambda_loader.handler import lambda_handler
from lambda_loader.load import run_load

TEXTS = [
    "",
    None,
    "plain",
    "ünïcödé 😀 中文 ßø",
    'quote " and ""double""',
    "comma, here",
    "new\nline\r\nand CRLF",
    "back\\slash \\N",
    "\\.",
    "  spaces  ",
    "NULL",
    "'single'",
    "tab\there",
]
N = len(TEXTS)
EDGE = [
    ("id", "integer", pa.int32(), False),
    ("name", "text", pa.string(), True),
    ("small", "smallint", pa.int16(), True),
    ("big", "bigint", pa.int64(), True),
    ("money", "numeric(10,2)", pa.decimal128(10, 2), True),
    ("stamp", "timestamp(3) without time zone", pa.timestamp("ms"), True),
    ("flag", "boolean", pa.bool_(), True),
    ("day", "date", pa.date32(), True),
    ("kind", '"PaymentTypeName"', pa.string(), True),
    ("code", "character varying(3)", pa.string(), True),
]
STAMPS = [
    dt.datetime(2024, 1, 1, 0, 0, 0),
    dt.datetime(2024, 1, 1, 0, 0, 0, 1000),
    dt.datetime(2024, 1, 1, 23, 59, 59, 999000),
    dt.datetime(1970, 1, 1),
    dt.datetime(1, 1, 1),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999000),
    dt.datetime(2000, 2, 29, 12, 0, 0, 500000),
    None,
]
MONEY = ["99999999.99", "-99999999.99", "0.00", "0.01", "-0.01", None, "12.30"]


def _cycle(values: list, n: int = N) -> list:
    return [values[i % len(values)] for i in range(n)]


def edge_rows() -> dict[str, list]:
    return {
        "id": list(range(1, N + 1)),
        "name": TEXTS,
        "small": _cycle([-32768, 32767, 0, None]),
        "big": _cycle([-(2**63), 2**63 - 1, 0, None]),
        "money": [Decimal(m) if m else None for m in _cycle(MONEY)],
        "stamp": _cycle(STAMPS),
        "flag": _cycle([True, False, None]),
        "day": _cycle([dt.date(2024, 2, 29), dt.date(1, 1, 1), dt.date(9999, 12, 31), None]),
        "kind": _cycle(["SALES_RECEIPT", "PURCHASE_REFUND", None]),
        "code": _cycle(["GBP", "", None, "EU"]),
    }


def sales_orders(first_id: int, count: int, *, updated: dt.datetime | None = None) -> pa.Table:
    base = updated or dt.datetime(2024, 11, 3, 14, 20, 52, 186000)
    ids = list(range(first_id, first_id + count))
    return arrow_table(
        SALES_ORDER,
        {
            "sales_order_id": ids,
            "created_at": [base] * count,
            "last_updated": [base + dt.timedelta(milliseconds=i) for i in range(count)],
            "design_id": [i % 470 + 1 for i in ids],
            "staff_id": [i % 20 + 1 for i in ids],
            "counterparty_id": [i % 20 + 1 for i in ids],
            "units_sold": [1001 + i % 98972 for i in ids],
            "unit_price": [Decimal(f"{2 + i % 200 / 100:.2f}") for i in ids],
            "currency_id": [i % 3 + 1 for i in ids],
            "agreed_delivery_date": ["2024-11-10"] * count,
            "agreed_payment_date": ["2024-11-12"] * count,
            "agreed_delivery_location_id": [i % 30 + 1 for i in ids],
        },
    )


def sales_part(first_id: int, count: int, parts: int = 1) -> TablePart:
    size = -(-count // parts)
    return TablePart(
        "sales_order",
        SALES_ORDER,
        [sales_orders(first_id + i * size, min(size, count - i * size)) for i in range(parts)],
    )


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
