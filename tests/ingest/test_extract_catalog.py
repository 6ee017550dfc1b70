"""The extract discovers the business tables, their columns and types from the catalog."""

from __future__ import annotations

import pyarrow as pa
import pytest

from infra.local.totesys.schema import create_schema
from ingest.catalog import discover_tables
from runtime.pg_types import UnsupportedTypeError

TOTESYS = [
    "address", "counterparty", "currency", "department", "design", "payment", "payment_type",
    "purchase_order", "sales_order", "staff", "transaction",
]  # fmt: skip


@pytest.fixture
def totesys(isolated):
    conn = isolated.totesys()
    create_schema(conn)
    yield conn
    conn.close()


def test_every_business_table_is_found_and_prisma_migrations_is_not(totesys):
    totesys.run("create table if not exists _prisma_migrations (id varchar(36) primary key)")
    assert [t.name for t in discover_tables(totesys)] == TOTESYS


def test_columns_come_in_table_order_with_types_nullability_and_key(totesys):
    [sales] = [t for t in discover_tables(totesys) if t.name == "sales_order"]
    assert [c.name for c in sales.columns] == [
        "sales_order_id", "created_at", "last_updated", "design_id", "staff_id",
        "counterparty_id", "units_sold", "unit_price", "currency_id", "agreed_delivery_date",
        "agreed_payment_date", "agreed_delivery_location_id",
    ]  # fmt: skip
    assert sales.primary_key == ("sales_order_id",)
    price = sales.column("unit_price")
    assert (price.pg_type, price.arrow, price.nullable) == (
        "numeric(10,2)", pa.decimal128(10, 2), False,
    )  # fmt: skip
    assert sales.column("last_updated").arrow == pa.timestamp("ms")
    assert sales.column("agreed_delivery_date").arrow == pa.string()


def test_nullable_columns_and_enums_are_described(totesys):
    tables = {t.name: t for t in discover_tables(totesys)}
    assert tables["address"].column("address_line_2").nullable
    assert not tables["address"].column("address_line_1").nullable
    kind = tables["transaction"].column("transaction_type")
    assert (kind.pg_type, kind.arrow) == ('"TransactionType"', pa.string())


def test_postgres_types_map_to_explicit_arrow_types(totesys):
    totesys.run(
        "create table kinds (id bigint primary key, s smallint, n numeric, n2 numeric(38,10),"
        " ts timestamp, ts6 timestamp(6), tz timestamptz, d date, b boolean, r real,"
        " f double precision, j jsonb, c char(2), last_updated timestamp(3) not null)"
    )
    [kinds] = [t for t in discover_tables(totesys) if t.name == "kinds"]
    assert {c.name: c.arrow for c in kinds.columns} == {
        "id": pa.int64(), "s": pa.int16(), "n": pa.string(), "n2": pa.decimal128(38, 10),
        "ts": pa.timestamp("us"), "ts6": pa.timestamp("us"),
        "tz": pa.timestamp("us", tz="UTC"), "d": pa.date32(), "b": pa.bool_(),
        "r": pa.float32(), "f": pa.float64(), "j": pa.string(), "c": pa.string(),
        "last_updated": pa.timestamp("ms"),
    }  # fmt: skip


def test_a_domain_keeps_its_name_and_maps_like_its_base_type(totesys):
    totesys.run("create domain money2 as numeric(10,2)")
    totesys.run("create domain code3 as varchar(3) not null")
    totesys.run(
        "create table priced (id integer primary key, price money2, code code3,"
        " last_updated timestamp(3) not null)"
    )
    [priced] = [t for t in discover_tables(totesys) if t.name == "priced"]
    price, code = priced.column("price"), priced.column("code")
    assert (price.pg_type, price.arrow) == ("money2", pa.decimal128(10, 2))
    assert (code.pg_type, code.arrow) == ("code3", pa.string())
    assert priced.arrow_schema.field("price").type == pa.decimal128(10, 2)


def test_a_type_without_a_faithful_mapping_is_refused_by_name(totesys):
    totesys.run("create table odd (id int primary key, span interval)")
    with pytest.raises(UnsupportedTypeError, match=r"public\.odd\.span"):
        discover_tables(totesys)
