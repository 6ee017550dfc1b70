"""End to end with the real extractor: totesys → run_extract → run_load → raw, value for value."""

from __future__ import annotations

from infra.local.totesys.schema import TOTESYS_TABLES
from infra.local.totesys.seed import seed
from ingest.extract import run_extract
from lambda_loader.load import run_load

TABLES = TOTESYS_TABLES


def _source_rows(conn, table: str) -> list[list]:
    columns = [
        r[0]
        for r in conn.run(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = :t ORDER BY ordinal_position",
            t=table,
        )
    ]
    names = ", ".join(f'"{c}"::text' if c in _ENUMS.get(table, ()) else f'"{c}"' for c in columns)
    return columns, conn.run(f'SELECT {names} FROM "{table}"')


_ENUMS = {"payment_type": ("payment_type_name",), "transaction": ("transaction_type",)}


def test_an_extract_arrives_in_raw_with_every_value_intact(isolated):
    source = isolated.totesys()
    seed(source, scale=0.02, seed=7)  # creates the schema too
    assert run_extract(isolated.settings).committed
    assert run_extract(isolated.settings).committed  # nothing changed: an empty run

    result = run_load(isolated.settings)

    assert result.loaded == [1, 2]
    warehouse = isolated.warehouse()
    for table in TABLES:
        columns, rows = _source_rows(source, table)
        names = ", ".join(f'"{c}"' for c in columns)
        loaded = warehouse.run(f'SELECT {names} FROM raw."{table}"')
        assert sorted(loaded, key=lambda r: r[0]) == sorted(rows, key=lambda r: r[0]), table
