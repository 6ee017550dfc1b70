"""Create and evolve the raw table of one source table from its manifest entry.

Runs inside the load transaction, so a table created or altered for a manifest that then fails
is rolled back with it. Raw columns are nullable: a column added later must be (old rows have
no value), and non-null source columns are checked on the data instead (`copyin`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pg8000.native

from lambda_loader import rawtypes
from lambda_loader.errors import ManifestError, SchemaChangeError
from runtime.db import qualified, quote_ident
from runtime.lake import TableEntry

RAW_SCHEMA = "raw"
# Lineage columns, after the source columns, in this order (docs/CONTRACTS.md).
LINEAGE = (
    ("_manifest_seq", "bigint"),
    ("_run_id", "text"),
    ("_source_file", "text"),
    ("_loaded_at", "timestamp with time zone"),
)
LINEAGE_NAMES = tuple(name for name, _ in LINEAGE)


@dataclass
class TableChanges:
    """What `ensure_table` did, for the log."""

    created: bool = False
    added: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    missing_from_source: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return self.created or bool(self.added or self.widened)


def ensure_table(
    conn: pg8000.native.Connection, entry: TableEntry, manifest_key: str
) -> TableChanges:
    """Make raw.<table> able to take this manifest entry's columns without loss, or raise."""
    wanted = _wanted_types(entry, manifest_key)
    table = qualified(RAW_SCHEMA, entry.table)
    existing = current_columns(conn, entry.table)
    changes = TableChanges()
    if not existing:
        columns = [f"{quote_ident(n)} {t.sql}" for n, t in wanted.items()]
        columns += [f"{quote_ident(n)} {t} NOT NULL" for n, t in LINEAGE]
        conn.run(f"CREATE TABLE {table} ({', '.join(columns)})")
        changes.created = True
        return changes
    for name, want in wanted.items():
        have = existing.get(name)
        if have is None:
            conn.run(f"ALTER TABLE {table} ADD COLUMN {quote_ident(name)} {want.sql}")
            changes.added.append(name)
            continue
        target = rawtypes.union(want, have)
        if target is None:
            raise SchemaChangeError(
                f"manifest {manifest_key}: column raw.{entry.table}.{name} is {have.sql} in the "
                f"warehouse but the source now sends {want.sql}; converting would lose data, so "
                "the load stopped. Migrate the raw column by hand (or skip the manifest), then "
                "re-run."
            )
        if target != have:
            # USING makes the cast explicit; every widening here is exact for existing values.
            conn.run(
                f"ALTER TABLE {table} ALTER COLUMN {quote_ident(name)} TYPE {target.sql} "
                f"USING {quote_ident(name)}::{target.sql}"
            )
            changes.widened.append(f"{name}: {have.sql} -> {target.sql}")
    changes.missing_from_source = [
        n for n in existing if n not in wanted and n not in LINEAGE_NAMES
    ]
    return changes


def current_columns(conn: pg8000.native.Connection, table: str) -> dict[str, rawtypes.RawType]:
    """The raw table's columns and types in order; empty when the table does not exist."""
    rows = conn.run(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relname = :table AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum",
        schema=RAW_SCHEMA,
        table=table,
    )
    return {name: rawtypes.from_catalog(sql) for name, sql in rows}


def _wanted_types(entry: TableEntry, manifest_key: str) -> dict[str, rawtypes.RawType]:
    wanted: dict[str, rawtypes.RawType] = {}
    for column in entry.columns:
        if column.name in LINEAGE_NAMES or column.name in wanted:
            raise ManifestError(
                f"manifest {manifest_key}: table {entry.table} has a duplicate or reserved "
                f"column name {column.name!r}",
                file=manifest_key,
            )
        try:
            wanted[column.name] = rawtypes.for_column(column)
        except rawtypes.UnsupportedType as err:
            raise SchemaChangeError(
                f"manifest {manifest_key}: table {entry.table}: {err}", file=manifest_key
            ) from err
    return wanted
