"""The loader's COPY path: binary and CSV carry the same values exactly, the lineage columns
take theirs from their defaults (never from an earlier transaction), and an old raw table gets
those defaults once."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pg8000
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.loader_lake import arrow_table
from support.loader_rows import EDGE, edge_rows

from lambda_loader import copyin, ledger, pgbinary, rawschema
from runtime.lake import TableEntry
from runtime.pg_types import Column

LOADED_AT = dt.datetime(2026, 11, 25, 22, 30, 0, 123456, tzinfo=dt.UTC)
# A numeric wider than 18 digits: the binary encoder refuses it, so the file goes as CSV.
WIDE = [*EDGE, ("wide", "numeric(30,4)", pa.decimal128(30, 4), True)]


def _columns(spec) -> tuple[Column, ...]:
    return tuple(Column(n, pg, nullable, str(t)) for n, pg, t, nullable in spec)


def _parquet(table: pa.Table) -> pq.ParquetFile:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return pq.ParquetFile(io.BytesIO(sink.getvalue()))


def _copy(conn, name: str, spec, table: pa.Table, *, source_file: str = "f.parquet") -> int:
    """ensure_table + copy_parquet in one transaction, as the loader does."""
    columns = _columns(spec)
    entry = TableEntry(name, ("id",), columns, None, None, table.num_rows, ())
    conn.run("BEGIN")
    ledger.create_tables(conn)  # the raw schema, as the loader's prepare makes it
    rawschema.ensure_table(conn, entry, "m")
    lineage = copyin.Lineage(7, "run-7", source_file, LOADED_AT)
    copied = copyin.copy_parquet(conn, name, _parquet(table), columns, lineage, manifest_key="m")
    conn.run("COMMIT")
    return copied


def _rows(conn, name: str, spec) -> list[list]:
    names = ", ".join(f'"{n}"' for n, *_ in spec)
    return conn.run(f'SELECT {names} FROM raw."{name}" ORDER BY id')


def test_binary_and_csv_copies_store_the_same_exact_values(isolated):
    rows = edge_rows()
    wide = [Decimal("12345678901234567890123456.7891"), None, Decimal("-0.0001")]
    rows["wide"] = [wide[i % 3] for i in range(len(rows["id"]))]
    table = arrow_table(WIDE, rows)
    assert pgbinary.encoder_for(
        _columns(EDGE), _targets(EDGE), table.select(range(len(EDGE))).schema
    )
    assert pgbinary.encoder_for(_columns(WIDE), _targets(WIDE), table.schema) is None
    conn = isolated.warehouse()

    assert _copy(conn, "binary", EDGE, table.select(range(len(EDGE)))) == len(rows["id"])
    assert _copy(conn, "csv", WIDE, table) == len(rows["id"])

    expected = [[row[n] for n, *_ in WIDE] for row in table.to_pylist()]
    assert _rows(conn, "csv", WIDE) == expected
    assert _rows(conn, "binary", EDGE) == [row[: len(EDGE)] for row in expected]
    assert conn.run("SELECT count(*) FROM raw.binary WHERE name = ''") == [[1]]
    assert conn.run("SELECT count(*) FROM raw.binary WHERE name IS NULL") == [[1]]


def _targets(spec) -> dict:
    from lambda_loader import rawtypes

    return {c.name: rawtypes.for_column(c) for c in _columns(spec)}


def test_a_widened_raw_column_takes_the_files_narrower_values(isolated):
    spec = [("id", "integer", pa.int32(), False), ("n", "integer", pa.int32(), True)]
    conn = isolated.warehouse()
    _copy(conn, "widened", spec, arrow_table(spec, {"id": [1], "n": [5]}))
    conn.run(
        "ALTER TABLE raw.widened ALTER COLUMN id TYPE bigint, ALTER COLUMN n TYPE numeric(12,2)"
    )

    rows = {"id": [2, 3, 4], "n": [-(2**31), None, 2**31 - 1]}
    _copy(conn, "widened", spec, arrow_table(spec, rows))

    assert _rows(conn, "widened", spec) == [
        [1, Decimal("5.00")],
        [2, Decimal("-2147483648.00")],
        [3, None],
        [4, Decimal("2147483647.00")],
    ]


def test_every_row_gets_its_files_lineage_and_only_through_the_loader(isolated):
    spec = [("id", "integer", pa.int32(), False)]
    conn = isolated.warehouse()
    _copy(conn, "t", spec, arrow_table(spec, {"id": [1, 2]}), source_file="a.parquet")
    _copy(conn, "t", spec, arrow_table(spec, {"id": [3]}), source_file="b.parquet")

    assert conn.run(
        "SELECT id, _manifest_seq, _run_id, _source_file, _loaded_at FROM raw.t ORDER BY id"
    ) == [
        [1, 7, "run-7", "a.parquet", LOADED_AT],
        [2, 7, "run-7", "a.parquet", LOADED_AT],
        [3, 7, "run-7", "b.parquet", LOADED_AT],
    ]
    # The values were the loader's transaction's: a later one on the same session that sets
    # none gets none, and the NOT NULL refuses the row.
    with pytest.raises(pg8000.DatabaseError, match="null value"):
        conn.run("INSERT INTO raw.t (id) VALUES (4)")


def test_an_old_raw_table_gets_the_lineage_defaults_once(isolated):
    spec = [("id", "integer", pa.int32(), False)]
    conn = isolated.warehouse()
    conn.run("CREATE SCHEMA raw")
    conn.run(
        "CREATE TABLE raw.old (id integer, _manifest_seq bigint NOT NULL, _run_id text NOT NULL,"
        " _source_file text NOT NULL, _loaded_at timestamp with time zone NOT NULL)"
    )
    conn.run("INSERT INTO raw.old VALUES (1, 1, 'run-1', 'old.parquet', now())")

    _copy(conn, "old", spec, arrow_table(spec, {"id": [2]}))
    defaults = conn.run(
        "SELECT d.oid FROM pg_attrdef d WHERE d.adrelid = 'raw.old'::regclass ORDER BY d.adnum"
    )
    _copy(conn, "old", spec, arrow_table(spec, {"id": [3]}))

    assert len(defaults) == 4
    assert (
        conn.run(
            "SELECT d.oid FROM pg_attrdef d WHERE d.adrelid = 'raw.old'::regclass ORDER BY d.adnum"
        )
        == defaults
    )  # the second load found them and altered nothing
    assert conn.run("SELECT id, _source_file FROM raw.old ORDER BY id") == [
        [1, "old.parquet"],
        [2, "f.parquet"],
        [3, "f.parquet"],
    ]


def test_csv_quotes_every_string_and_nothing_else():
    table = pa.table(
        {
            "s": pa.array(["", None, "a,b", 'q"'], pa.string()),
            "n": pa.array([1, None, 3, 4], pa.int32()),
            "d": pa.array([dt.date(2024, 1, 1), None, None, None], pa.date32()),
        }
    )
    out = io.BytesIO()
    pacsv.write_csv(table, out, copyin.CSV_OPTIONS)
    # '' is quoted, NULL is an empty unquoted field: COPY keeps them apart.
    assert out.getvalue() == b'"",1,2024-01-01\n,,\n"a,b",3,\n"q""",4,\n'


@pytest.mark.parametrize(
    ("arrow", "value"),
    [
        (pa.date32(), -2_500_000),  # before 4713 BC
        (pa.timestamp("s"), 10**17),  # microseconds beyond 64 bits
        (pa.timestamp("ms"), 9_300_000_000_000_000),  # after 294276 AD
    ],
)
def test_a_value_outside_postgresqls_range_is_refused_not_wrapped(arrow, value):
    family = "date" if pa.types.is_date(arrow) else "timestamp"
    spec = [("id", "integer", pa.int32(), False), ("v", family, arrow, False)]
    table = pa.table({"id": pa.array([1], pa.int32()), "v": pa.array([value], arrow)})
    encoder = pgbinary.encoder_for(_columns(spec), _targets(spec), table.schema)
    assert encoder is not None
    with pytest.raises(pgbinary.OutOfRange):
        encoder.rows(table.to_batches()[0])
