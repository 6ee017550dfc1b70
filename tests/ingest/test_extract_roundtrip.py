"""A first run extracts every row of every table with every value and type intact."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pyarrow as pa
import pytest
from support.extract_lake import OPTIONS, entry, manifests, settle, table_rows

from infra.local.totesys.schema import create_schema
from infra.local.totesys.seed import seed
from ingest.extract import run_extract

AWKWARD_TEXT = [
    None,
    "",
    '"quoted", with comma',
    "line one\nline two\r\nthree",
    "ends\ndone",  # "\nd" inside a value looks like a COPY message header to the reader
    "Zoë — 東京 🚀",
    "\\N",
    "NULL",
    "  padded  ",
    ",",
    '"',
]


@pytest.fixture
def awkward(isolated):
    """The totesys schema plus a table of awkward values, one row per value."""
    conn = isolated.totesys()
    create_schema(conn)
    conn.run(
        "create table awkward (id integer primary key, note text, code varchar(40),"
        " price numeric(10,2), loose numeric, at timestamp(3) not null, fine timestamp,"
        " zoned timestamptz, flag boolean, day date, ratio double precision, doc jsonb,"
        ' kind "PaymentTypeName", big bigint, last_updated timestamp(3) not null)'
    )
    for i, text in enumerate(AWKWARD_TEXT):
        conn.run(
            "insert into awkward values (:i, :t, :c, :p, :l, :at, :fine, :zoned, :flag,"
            " :day, :ratio, cast(:doc as jsonb), cast(:kind as \"PaymentTypeName\"), :big, now())",
            i=i, t=text, c=text,
            p=[Decimal("99999999.99"), Decimal("-0.01"), Decimal("0.00"), None][i % 4],
            l=[Decimal("12345678901234567890.123456789"), None][i % 2],
            at=["2024-11-03 14:20:52.000", "2024-11-03 14:20:52.186", "1999-12-31 23:59:59.999"][
                i % 3
            ],
            fine=["2024-11-03 14:20:52.123456", None][i % 2],
            zoned=["2024-11-03 14:20:52.5+01", None][i % 2],
            flag=[True, False, None][i % 3],
            day=["2024-02-29", None][i % 2],
            ratio=[1.5e-300, -0.0, None][i % 3],
            doc=['{"a": "b, \\"c\\""}', None][i % 2],
            kind=["SALES_REFUND", None][i % 2],
            big=[9223372036854775807, -9223372036854775808, None][i % 3],
        )  # fmt: skip
    settle(conn)
    yield conn
    conn.close()


def source_rows(conn, table: str) -> list[dict]:
    rows = conn.run(f'select * from "{table}" order by 1')
    names = [c["name"] for c in conn.columns]
    return [dict(zip(names, row, strict=True)) for row in rows]


def lake_rows(isolated, table: str) -> list[dict]:
    [manifest] = manifests(isolated.s3(), isolated.settings.ingestion_bucket)
    rows = table_rows(isolated.s3(), isolated.settings.ingestion_bucket, manifest, table)
    return sorted(rows.to_pylist(), key=lambda r: next(iter(r.values())))


def test_awkward_values_round_trip_exactly(isolated, awkward):
    run_extract(isolated.settings, options=OPTIONS)
    got = lake_rows(isolated, "awkward")
    want = source_rows(awkward, "awkward")
    # Unconstrained numeric is carried as its exact text.
    for row in got:
        row["loose"] = None if row["loose"] is None else Decimal(row["loose"])
    # jsonb travels as Postgres's text of it; pg8000 hands it over parsed.
    for row in got:
        row["doc"] = None if row["doc"] is None else json.loads(row["doc"])
    assert got == want


def test_null_and_empty_string_stay_distinct(isolated, awkward):
    run_extract(isolated.settings, options=OPTIONS)
    notes = {r["id"]: r["note"] for r in lake_rows(isolated, "awkward")}
    assert (notes[0], notes[1]) == (None, "")


def test_parquet_columns_have_exactly_the_manifest_types(isolated, awkward):
    run_extract(isolated.settings, options=OPTIONS)
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    [manifest] = manifests(s3, bucket)
    rows = table_rows(s3, bucket, manifest, "awkward")
    declared = {c["name"]: c["arrow_type"] for c in entry(manifest, "awkward")["columns"]}
    assert {f.name: str(f.type) for f in rows.schema} == declared
    assert rows.schema.field("price").type == pa.decimal128(10, 2)
    assert rows.schema.field("zoned").type == pa.timestamp("us", tz="UTC")


def test_a_first_run_extracts_every_row_of_every_seeded_table(isolated):
    conn = isolated.totesys()
    seed(conn, scale=0.05, seed=7)
    settle(conn)
    run_extract(isolated.settings, options=OPTIONS)
    s3, bucket = isolated.s3(), isolated.settings.ingestion_bucket
    [manifest] = manifests(s3, bucket)
    for table in manifest["tables"]:
        name = table["table"]
        want = source_rows(conn, name)
        rows = table_rows(s3, bucket, manifest, name)
        got = sorted(rows.to_pylist(), key=lambda r: r[f"{name}_id"]) if rows else []
        assert (name, got) == (name, want)
        assert table["watermark"]["low"] is None


def test_a_table_read_in_parallel_key_ranges_yields_every_row_once(isolated):
    conn = isolated.totesys()
    seed(conn, scale=0.05, seed=9)
    settle(conn)
    result = run_extract(
        isolated.settings, options=replace(OPTIONS, workers=3, parallel_min_rows=10)
    )
    [manifest] = manifests(isolated.s3(), isolated.settings.ingestion_bucket)
    rows = table_rows(isolated.s3(), isolated.settings.ingestion_bucket, manifest, "sales_order")
    got = sorted(rows.to_pylist(), key=lambda r: r["sales_order_id"])
    assert result.committed and got == source_rows(conn, "sales_order")


def test_a_table_without_an_integer_key_round_trips_through_plain_csv_copy(isolated, awkward):
    awkward.run("create table keyless as select * from awkward")  # no primary key at all
    run_extract(isolated.settings, options=OPTIONS)
    got = lake_rows(isolated, "keyless")
    want = lake_rows(isolated, "awkward")
    assert sorted(got, key=lambda r: r["id"]) == sorted(want, key=lambda r: r["id"])
