"""runtime.pg_types is the one Postgres→Arrow type map and the one Column: every type the
source and the marts use maps explicitly, anything else fails naming the type."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from infra.local.totesys.schema import create_schema
from runtime import pg_arrow
from runtime.db import quote_ident
from runtime.pg_types import (
    Column,
    PgType,
    UnsupportedTypeError,
    arrow_from_text,
    arrow_type,
    parse,
)

# As format_type() prints them: the totesys source's types, then the rest the marts and the
# lake may hold.
EXPECTED = {
    "integer": pa.int32(),
    "real": pa.float32(),
    "boolean": pa.bool_(),
    "text": pa.string(),
    "character varying(3)": pa.string(),
    "character varying(255)": pa.string(),
    "character varying(36)": pa.string(),
    "character varying(64)": pa.string(),
    "numeric(10,2)": pa.decimal128(10, 2),
    "timestamp(3) without time zone": pa.timestamp("ms"),
    "timestamp(3) with time zone": pa.timestamp("ms", tz="UTC"),
    "smallint": pa.int16(),
    "bigint": pa.int64(),
    "double precision": pa.float64(),
    "date": pa.date32(),
    "character(2)": pa.string(),
    "character varying": pa.string(),
    "bpchar": pa.string(),
    "uuid": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "numeric(38,10)": pa.decimal128(38, 10),
    # Unconstrained (no fixed scale, may hold NaN) or wider than decimal128: text keeps it exact.
    "numeric": pa.string(),
    "numeric(39,2)": pa.string(),
    "timestamp without time zone": pa.timestamp("us"),
    "timestamp(0) without time zone": pa.timestamp("ms"),
    "timestamp(6) without time zone": pa.timestamp("us"),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    # Athena has no time type.
    "time without time zone": pa.string(),
    "time(3) without time zone": pa.string(),
}


@pytest.mark.parametrize(("pg_type", "arrow"), EXPECTED.items())
def test_every_known_type_maps_to_its_arrow_type(pg_type, arrow):
    assert arrow_type(pg_type) == arrow
    assert Column("c", pg_type, True).arrow == arrow


def test_every_column_of_the_source_maps(isolated):
    totesys = isolated.totesys()
    create_schema(totesys)
    rows = totesys.run(
        "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), t.typtype = 'e'"
        " from pg_attribute a join pg_class c on c.oid = a.attrelid"
        " join pg_namespace n on n.oid = c.relnamespace join pg_type t on t.oid = a.atttypid"
        " where n.nspname = 'public' and c.relkind = 'r' and a.attnum > 0"
        " and not a.attisdropped and c.relname <> '_prisma_migrations'"
    )
    totesys.close()
    assert len(rows) > 50
    enums = {pg_type for _, _, pg_type, enum in rows if enum}
    assert enums == {'"PaymentTypeName"', '"TransactionType"'}
    for _, _, pg_type, enum in rows:
        expected = pa.string() if enum else EXPECTED[pg_type]
        assert arrow_type(pg_type, enum=enum) == expected


@pytest.mark.parametrize(
    "pg_type",
    ["interval", "bytea", "integer[]", "time with time zone", '"TransactionType"', "money"],
)
def test_an_unknown_type_fails_naming_it(pg_type):
    with pytest.raises(UnsupportedTypeError, match=re.escape(f"Postgres type {pg_type!r}")) as err:
        arrow_type(pg_type)
    assert err.value.pg_type == pg_type
    with pytest.raises(UnsupportedTypeError, match=f"column span: .*{re.escape(repr(pg_type))}"):
        Column("span", pg_type, True)


def test_looser_spellings_parse_as_format_type_prints_them():
    assert parse("int4") == parse("integer") == PgType("int", 32)
    assert parse(" Double   Precision ") == PgType("float", 64)
    assert parse("decimal(10)") == PgType("numeric", 10, 0)
    assert parse("numeric(12, 2)") == PgType("numeric", 12, 2)
    assert parse("timestamptz(3)") == parse("timestamp(3) with time zone")
    assert parse("timestamp") == PgType("timestamp", 6)
    assert parse("varchar(64)") == parse("character(1)") == PgType("text")
    assert parse("interval") is None and parse('"TransactionType"') is None


@pytest.mark.parametrize(
    "pg_type",
    [
        "smallint", "integer", "bigint", "real", "double precision", "numeric", "numeric(10,2)",
        "timestamp(3) without time zone", "timestamp(6) with time zone", "time without time zone",
        "time(3) without time zone", "text", "boolean", "date", "uuid", "jsonb",
    ],
)  # fmt: skip
def test_a_parsed_type_spells_itself_for_ddl_as_format_type_does(pg_type):
    assert parse(pg_type).sql == pg_type


def test_arrow_type_text_reads_back_as_the_type():
    for arrow in {*EXPECTED.values(), pa.decimal256(50, 2), pa.large_string(), pa.uint16()}:
        assert arrow_from_text(str(arrow)) == arrow
    with pytest.raises(ValueError):
        arrow_from_text("not a type")


def test_a_column_carries_its_arrow_type_as_a_manifest_spells_it():
    price = Column("price", "numeric(10,2)", False)
    assert price.arrow_type == "decimal128(10, 2)"
    assert price.field == pa.field("price", pa.decimal128(10, 2), nullable=False)
    # Given explicitly (an enum, a domain, a manifest's column), it is kept as given.
    kind = Column("kind", '"PaymentTypeName"', True, "string")
    assert (kind.arrow_type, kind.arrow) == ("string", pa.string())


def test_time_is_selected_as_millisecond_text_and_the_rest_as_is():
    columns = [Column("at", "time(6) without time zone", True), Column("id", "integer", False)]
    at, ident = quote_ident("at"), quote_ident("id")
    assert pg_arrow.select_list(columns) == (
        f"""to_char("t".{at}, 'HH24:MI:SS.MS') as {at}, "t".{ident}"""
    )
    assert pg_arrow.schema_of(columns) == pa.schema(
        [pa.field("at", pa.string()), pa.field("id", pa.int32(), nullable=False)]
    )
