"""Warehouse rows to Arrow with explicit types: Postgres catalog → Arrow schema, COPY CSV → Arrow.

The repo's pattern for moving rows out of Postgres: `COPY (query) TO STDOUT (FORMAT csv)`
read in bulk by `runtime.copy_out`, parsed by pyarrow's CSV reader with the column types taken
from the catalog (never inferred), so an empty string stays an empty string, a NULL stays NULL,
a numeric keeps its scale, and a type `runtime.pg_types` does not know is an error, not a guess.

`time` travels as text (see `runtime.pg_types`): it is selected as `HH24:MI:SS.MS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pg8000.native
import pyarrow as pa
import pyarrow.csv as pacsv

from runtime.copy_out import copy_out
from runtime.db import qualified, quote_ident
from runtime.pg_types import Column, parse


def table_columns(conn: pg8000.native.Connection, schema: str, table: str) -> list[Column]:
    """The table's columns in order, from the catalog; raises LookupError if it does not exist."""
    rows = conn.run(
        """
        select a.attname, format_type(a.atttypid, a.atttypmod), not a.attnotnull
        from pg_catalog.pg_attribute a
        join pg_catalog.pg_class c on c.oid = a.attrelid
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = :schema and c.relname = :table and a.attnum > 0 and not a.attisdropped
        order by a.attnum
        """,
        schema=schema,
        table=table,
    )
    if not rows:
        raise LookupError(f"{schema}.{table} does not exist in the warehouse")
    return [Column(name, pg_type, bool(nullable)) for name, pg_type, nullable in rows]


def schema_of(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([c.field for c in columns])


def select_list(columns: Sequence[Column], alias: str = "t") -> str:
    return ", ".join(select_expression(c, alias) for c in columns)


def select_expression(column: Column, alias: str = "t") -> str:
    """How to select the column so that its CSV text parses as its Arrow type."""
    ref = f"{quote_ident(alias)}.{quote_ident(column.name)}"
    parsed = parse(column.pg_type)
    if parsed is not None and parsed.family == "time":
        return f"to_char({ref}, 'HH24:MI:SS.MS') as {quote_ident(column.name)}"
    return ref


def read_table(
    conn: pg8000.native.Connection,
    schema: str,
    table: str,
    columns: Sequence[Column],
    *,
    where: str = "true",
    order_by: str | None = None,
) -> pa.Table:
    """`select <columns> from schema.table t where <where>` as an Arrow table of `columns`' types.

    `where` and `order_by` are SQL written by the caller from quoted identifiers and integer
    literals only: COPY cannot take bound parameters.
    """
    query = f"select {select_list(columns)} from {qualified(schema, table)} t where {where}"  # noqa: S608 - identifiers quoted
    if order_by:
        query += f" order by {order_by}"
    return pa.Table.from_batches(
        list(stream_query(conn, query, schema_of(columns))), schema=schema_of(columns)
    )


def stream_query(
    conn: pg8000.native.Connection, query: str, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """Record batches of `query`'s rows, typed by `schema` (one field per selected column)."""
    for block in copy_out(conn, f"copy ({query}) to stdout with (format csv)", padded=True):
        for batch in parse_copy_csv(block, schema).to_batches():
            yield batch.cast(schema)


def parse_copy_csv(block: Any, schema: pa.Schema) -> pa.Table:
    """Whole rows of `COPY … (FORMAT csv)` output typed as `schema`, never inferred. COPY
    writes NULL as an unquoted empty field and '' as `""`: only the former becomes null.

    `block` is bytes-like, as `runtime.copy_out` yields it, padded or not: with more than one
    column, a row is never an empty line, so empty lines are skipped; with one, an empty line
    is a NULL row. One block is one parse on the calling thread (`use_threads=False`): the
    callers run a stream per thread already, and Arrow's own threads cost a third more CPU
    for the same work."""
    convert = pacsv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )
    data = pa.py_buffer(block)
    read = pacsv.ReadOptions(
        column_names=schema.names, use_threads=False, block_size=max(data.size + 1, 1 << 20)
    )
    parse = pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=len(schema) > 1)
    return pacsv.read_csv(data, read, parse, convert)
