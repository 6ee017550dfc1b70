"""The raw tables follow the source's schema: new columns are added, widened types are widened,
and a change that would lose data stops the load with a clear error."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest
from support.loader_lake import TablePart, arrow_table, put_extract

from lambda_loader.errors import LoadFailed, SchemaChangeError
from lambda_loader.load import run_load

V1 = [
    ("currency_id", "integer", pa.int32(), False),
    ("currency_code", "character varying(3)", pa.string(), False),
    ("units", "integer", pa.int32(), False),
    ("price", "numeric(10,2)", pa.decimal128(10, 2), False),
    ("last_updated", "timestamp(3) without time zone", pa.timestamp("ms"), False),
]


def _extract(isolated, seq: int, columns: list, rows: dict) -> None:
    put_extract(
        isolated.s3(),
        isolated.settings.ingestion_bucket,
        seq,
        [TablePart("currency", columns, [arrow_table(columns, rows)])],
    )


def _v1_rows(ids: list[int]) -> dict:
    return {
        "currency_id": ids,
        "currency_code": ["GBP"] * len(ids),
        "units": [7] * len(ids),
        "price": [Decimal("99999999.99")] * len(ids),
        "last_updated": [pa.scalar(0, pa.timestamp("ms")).as_py()] * len(ids),
    }


def _types(conn) -> dict[str, str]:
    rows = conn.run(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'raw.currency'::regclass AND attnum > 0 ORDER BY attnum"
    )
    return dict(rows)


def test_a_column_added_in_the_source_is_added_to_raw(isolated):
    _extract(isolated, 1, V1, _v1_rows([1, 2]))
    v2 = [*V1, ("currency_name", "text", pa.string(), True)]
    _extract(isolated, 2, v2, {**_v1_rows([3]), "currency_name": ["Pound"]})

    result = run_load(isolated.settings)

    assert result.loaded == [1, 2]
    conn = isolated.warehouse()
    assert _types(conn)["currency_name"] == "text"
    assert conn.run("SELECT currency_id, currency_name FROM raw.currency ORDER BY 1") == [
        [1, None],
        [2, None],
        [3, "Pound"],
    ]


def test_compatible_widenings_are_applied_and_keep_existing_values(isolated):
    _extract(isolated, 1, V1, _v1_rows([1]))
    wider = [
        ("currency_id", "integer", pa.int32(), False),
        ("currency_code", "character varying(10)", pa.string(), False),
        ("units", "bigint", pa.int64(), False),
        ("price", "numeric(12,2)", pa.decimal128(12, 2), False),
        ("last_updated", "timestamp(3) without time zone", pa.timestamp("ms"), False),
    ]
    rows = {
        **_v1_rows([2]),
        "units": [2**40],
        "price": [Decimal("9999999999.99")],
        "currency_code": ["LONGERCODE"],
    }
    _extract(isolated, 2, wider, rows)

    run_load(isolated.settings)

    conn = isolated.warehouse()
    types = _types(conn)
    assert (types["currency_code"], types["units"], types["price"]) == (
        "text",
        "bigint",
        "numeric(12,2)",
    )
    assert conn.run("SELECT units, price, currency_code FROM raw.currency ORDER BY 1") == [
        [7, Decimal("99999999.99"), "GBP"],
        [2**40, Decimal("9999999999.99"), "LONGERCODE"],
    ]


def test_a_narrower_source_type_fits_the_existing_raw_column_unchanged(isolated):
    _extract(
        isolated,
        1,
        [*V1[:2], ("units", "bigint", pa.int64(), False), *V1[3:]],
        {**_v1_rows([1]), "units": [2**40]},
    )
    _extract(isolated, 2, V1, _v1_rows([2]))

    run_load(isolated.settings)

    assert _types(isolated.warehouse())["units"] == "bigint"


def test_a_scale_and_precision_change_widens_to_hold_both(isolated):
    _extract(isolated, 1, V1, _v1_rows([1]))
    changed = [*V1[:3], ("price", "numeric(10,4)", pa.decimal128(10, 4), False), V1[4]]
    _extract(isolated, 2, changed, {**_v1_rows([2]), "price": [Decimal("123456.7891")]})

    run_load(isolated.settings)

    conn = isolated.warehouse()
    assert _types(conn)["price"] == "numeric(12,4)"
    assert conn.run("SELECT price FROM raw.currency ORDER BY currency_id") == [
        [Decimal("99999999.9900")],
        [Decimal("123456.7891")],
    ]


@pytest.mark.parametrize(
    ("column", "new_type"),
    [
        (("last_updated", "date", pa.date32(), False), "date"),
        (("currency_code", "integer", pa.int32(), False), "integer"),
    ],
)
def test_a_type_change_that_would_lose_data_stops_with_a_clear_error(isolated, column, new_type):
    _extract(isolated, 1, V1, _v1_rows([1]))
    run_load(isolated.settings)
    lossy = [column if c[0] == column[0] else c for c in V1]
    value = pa.array([1], column[2]).to_pylist()
    _extract(isolated, 2, lossy, {**_v1_rows([2]), column[0]: value})

    with pytest.raises(LoadFailed) as failed:
        run_load(isolated.settings)

    assert isinstance(failed.value.__cause__, SchemaChangeError)
    assert f"raw.currency.{column[0]}" in str(failed.value)
    assert f"source now sends {new_type}" in str(failed.value) and "lose data" in str(failed.value)
    conn = isolated.warehouse()
    assert _types(conn) == {
        "currency_id": "integer",
        "currency_code": "text",
        "units": "integer",
        "price": "numeric(10,2)",
        "last_updated": "timestamp(3) without time zone",
        "_manifest_seq": "bigint",
        "_run_id": "text",
        "_source_file": "text",
        "_loaded_at": "timestamp with time zone",
    }
    assert conn.run("SELECT count(*) FROM raw.currency") == [[1]]
    assert conn.run("SELECT seq, resolved FROM raw._load_failures") == [[2, False]]
