"""Discover the business tables of the source from the Postgres catalog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from runtime.pg_types import Column, UnsupportedTypeError, arrow_type

# Prisma's bookkeeping table: not business data, never extracted.
EXCLUDED_TABLES = frozenset({"_prisma_migrations"})


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([c.field for c in self.columns])

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def discover_tables(conn: Any, schema: str = "public") -> list[Table]:
    """Every ordinary or partitioned table in `schema` except the excluded ones, by name, with
    columns in their physical order."""
    rows = conn.run(_COLUMNS_SQL, schema=schema)
    keys = {name: tuple(pk or ()) for name, pk in conn.run(_PRIMARY_KEYS_SQL, schema=schema)}
    tables: dict[str, list[Column]] = {}
    for table, name, pg_type, stored_as, is_enum, not_null in rows:
        if table in EXCLUDED_TABLES:
            continue
        try:
            arrow = arrow_type(stored_as, enum=is_enum)
        except UnsupportedTypeError:
            raise UnsupportedTypeError(stored_as, f"{schema}.{table}.{name}") from None
        column = Column(name, pg_type, not not_null, str(arrow))
        tables.setdefault(table, []).append(column)
    return [
        Table(schema, name, tuple(columns), keys.get(name, ()))
        for name, columns in sorted(tables.items())
    ]


# A column's type as declared (what the manifest records), and the type it is stored as: a
# domain resolves to its base type with the domain's typmod, so a domain over numeric(10,2)
# maps like numeric(10,2).
_COLUMNS_SQL = """
select c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       format_type(bt.oid, case when t.typtype = 'd' then t.typtypmod else a.atttypmod end),
       bt.typtype = 'e',
       a.attnotnull
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
join pg_catalog.pg_type t on t.oid = a.atttypid
join pg_catalog.pg_type bt on bt.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end
where n.nspname = :schema and c.relkind in ('r', 'p') and not c.relispartition
order by c.relname, a.attnum
"""

_PRIMARY_KEYS_SQL = """
select c.relname,
       array(select a.attname
             from unnest(i.indkey) with ordinality as k(attnum, pos)
             join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
             order by k.pos)::text[]
from pg_catalog.pg_index i
join pg_catalog.pg_class c on c.oid = i.indrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = :schema and i.indisprimary
"""
