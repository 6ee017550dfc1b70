"""Stream one slice of a table out of Postgres as Arrow record batches.

`COPY (SELECT …) TO STDOUT (FORMAT csv)` runs on a background thread, read in
bulk by `runtime.copy_out` (pg8000's connection, without its per-row message dispatch) into
blocks of whole rows; a small bounded queue hands them to `pyarrow.csv`, which types them with
the explicit schema from the catalog. Memory is a few blocks, whatever the table size.

COPY's CSV writes NULL as an empty unquoted field and the empty string as `""`; the reader
takes only unquoted empties as NULL, so NULL and '' stay distinct, and values stay text until
Arrow types them.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ingest.catalog import Table
from runtime.copy_out import BLOCK_BYTES, copy_out
from runtime.db import qualified, quote_ident
from runtime.pg_arrow import parse_copy_csv

BATCH_ROWS = 131_072  # rows per yielded batch (and Parquet row group)
QUEUE_DEPTH = 4  # blocks in flight per stream: the server runs ahead while Parquet is written
WATERMARK_COLUMN = "last_updated"


@dataclass(frozen=True)
class Slice:
    """Which rows of a table: `low <= last_updated` (low None: from the beginning), below
    `high` when one is given, optionally only primary keys in `[key_low, key_high)`
    (integer single-column keys), or only the rows whose key is in `keys` (the silent
    versions reconciliation found). The pipeline reads with no `high`: every visible row."""

    low: str | None
    high: str | None = None
    key_low: int | None = None
    key_high: int | None = None
    keys: tuple[int, ...] | None = None
    by_index: bool = False  # read the `low` window through the table's last_updated index


class StreamError(RuntimeError):
    """Streaming a table failed; the message names the table."""


def stream_batches(
    conn: Any, table: Table, rows: Slice, *, block_bytes: int = BLOCK_BYTES
) -> Iterator[pa.RecordBatch]:
    """Yield the slice's rows as record batches with exactly `table.arrow_schema`.

    `conn` must be inside the transaction whose snapshot is being extracted; the COPY runs on
    it from a helper thread while this generator is consumed. If the stream fails or is
    abandoned, `conn` is closed (it is mid-COPY)."""
    planner = _prefer_index(conn) if rows.by_index and rows.low is not None else None
    sql = _bind_slice(conn, table, rows)
    source = _BlockQueue(depth=QUEUE_DEPTH)
    copier = threading.Thread(
        target=_copy_into,
        args=(conn, sql, source, block_bytes),
        daemon=True,
        name=f"copy-{table.name}",
    )
    copier.start()
    try:
        yield from _parse(source, table)
    except Exception as err:
        source.cancel()
        copier.join()
        cause = source.error or err
        raise StreamError(f"streaming {table.schema}.{table.name} failed: {cause}") from cause
    finally:
        source.cancel()
        copier.join()
    if source.error is not None:
        raise StreamError(f"streaming {table.schema}.{table.name} failed: {source.error}")
    if planner is not None:  # the next table's read chooses for itself again
        conn.run("select set_config('enable_seqscan', :value, true)", value=planner)


def watermark_index(conn: Any, table: Table) -> bool:
    """Whether the table has a valid btree index led by `last_updated`. With one, a run's
    window (`low <= last_updated`, a few hundred rows of millions) is read by an index range
    scan; without one, by a sequential scan of the whole table (still correct, just slower:
    the extract never needs more than read access, so it cannot create one; ingest/README.md)."""
    [[found]] = conn.run(
        _WATERMARK_INDEX_SQL, schema=table.schema, table=table.name, column=WATERMARK_COLUMN
    )
    return bool(found)


_WATERMARK_INDEX_SQL = """
select exists (
    select 1
    from pg_catalog.pg_index i
    join pg_catalog.pg_class c on c.oid = i.indrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    join pg_catalog.pg_class ic on ic.oid = i.indexrelid
    join pg_catalog.pg_am am on am.oid = ic.relam
    join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0]
    where n.nspname = :schema and c.relname = :table and a.attname = :column
      and am.amname = 'btree' and i.indisvalid and i.indpred is null
)
"""


def _prefer_index(conn: Any) -> str:
    """Steer this transaction's next COPY to the last_updated index; returns the setting to
    put back. Needed because COPY takes no parameters: the window's `low` reaches the query
    through set_config (values stay bound), so the planner cannot see it and guesses a third
    of the table, which a sequential scan wins. A table without the index is scanned anyway."""
    [[before]] = conn.run("select current_setting('enable_seqscan')")
    conn.run("select set_config('enable_seqscan', 'off', true)")
    return str(before)


def integer_key(table: Table) -> str | None:
    """The table's key column when it is a single integer column, else None."""
    if len(table.primary_key) != 1:
        return None
    column = table.column(table.primary_key[0])
    # smallint, integer, bigint (or a domain over one): the only columns typed as Arrow ints.
    return column.name if column is not None and pa.types.is_integer(column.arrow) else None


def key_span(conn: Any, table: Table) -> tuple[int, int] | None:
    """(min, max) of the integer key in the current snapshot; None when the table is empty."""
    key = quote_ident(integer_key(table) or "")
    [[first, last]] = conn.run(
        f"select min({key}), max({key}) from {qualified(table.schema, table.name)}"  # noqa: S608 - quoted identifiers
    )
    return None if first is None else (int(first), int(last))


def _bind_slice(conn: Any, table: Table, rows: Slice) -> str:
    """The COPY statement for the slice. COPY takes no bind parameters, so the values are
    bound into transaction-local settings with set_config and read back once, in the
    subquery `p` (a current_setting() in the WHERE clause would be re-evaluated per row)."""
    if table.column(WATERMARK_COLUMN) is None:
        raise StreamError(f"{table.schema}.{table.name} has no {WATERMARK_COLUMN} column")
    values: dict[str, tuple[str, str]] = {}
    watermark = f"t.{quote_ident(WATERMARK_COLUMN)}"
    where = ["true"]
    if rows.high is not None:
        values["high"] = (rows.high, "timestamp")
        where.append(f"{watermark} < p.high")
    if rows.low is not None:
        values["low"] = (rows.low, "timestamp")
        where.append(f"{watermark} >= p.low")
    if rows.key_low is not None and rows.key_high is not None:
        key = f"t.{quote_ident(table.primary_key[0])}"
        values["key_low"] = (str(rows.key_low), "bigint")
        values["key_high"] = (str(rows.key_high), "bigint")
        where += [f"{key} >= p.key_low", f"{key} < p.key_high"]
    if rows.keys is not None:
        values["keys"] = ("{" + ",".join(str(int(k)) for k in rows.keys) + "}", "bigint[]")
        where.append(f"t.{quote_ident(table.primary_key[0])} = any(p.keys)")
    for name, (value, _) in values.items():
        conn.run("select set_config(:name, :value, true)", name=f"totes.{name}", value=value)
    bound = (
        ", ".join(
            f"current_setting('totes.{name}')::{kind} as {name}"
            for name, (_, kind) in values.items()
        )
        or "1 as unbounded"
    )
    exprs = ", ".join(f"t.{quote_ident(c.name)}" for c in table.columns)
    return (
        f"copy (select {exprs} from (select {bound}) as p,"  # noqa: S608 - identifiers quoted, values bound via set_config
        f" {qualified(table.schema, table.name)} as t where {' and '.join(where)})"
        " to stdout (format csv)"
    )


def _parse(source: _BlockQueue, table: Table) -> Iterator[pa.RecordBatch]:
    """Each block holds whole rows, so it parses on its own (`read_csv` uses every core);
    blocks are gathered into batches of BATCH_ROWS rows, which become Parquet row groups."""
    target = table.arrow_schema
    pending: list[pa.Table] = []
    rows = 0
    for block in source.blocks():
        part = parse_copy_csv(block, target)
        pending.append(part)
        rows += part.num_rows
        if rows >= BATCH_ROWS:
            yield _combined(pending, target)
            pending, rows = [], 0
    if rows:
        yield _combined(pending, target)


def _combined(parts: list[pa.Table], target: pa.Schema) -> pa.RecordBatch:
    return pa.concat_tables(parts).combine_chunks().to_batches()[0].cast(target)


def _copy_into(conn: Any, sql: str, source: _BlockQueue, block_bytes: int) -> None:
    blocks = copy_out(conn, sql, block_bytes=block_bytes, padded=True)
    try:
        for block in blocks:
            source.put(block)
    except BaseException as err:  # handed to the reading side, which raises it
        source.fail(err)
    finally:
        blocks.close()  # closes the connection if the COPY did not finish
        source.finish()


class _BlockQueue:
    """A bounded hand-off of byte blocks from the COPY thread to the parser. Bounded so a
    slow reader slows the COPY instead of buffering the table."""

    _EOF = object()

    def __init__(self, depth: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._cancelled = threading.Event()
        self.error: BaseException | None = None

    # ---- producer side
    def put(self, block: bytes) -> None:
        while not self._cancelled.is_set():
            try:
                self._queue.put(block, timeout=0.2)
                return
            except queue.Full:
                continue
        raise StreamCancelled

    def fail(self, err: BaseException) -> None:
        if not isinstance(err, StreamCancelled):
            self.error = err

    def finish(self) -> None:
        with contextlib.suppress(StreamCancelled):
            self.put(self._EOF)  # type: ignore[arg-type]

    def cancel(self) -> None:
        self._cancelled.set()

    # ---- consumer side
    def blocks(self) -> Iterator[bytes]:
        """Every block until the producer finishes; raises the producer's error."""
        while (block := self._queue.get()) is not self._EOF:
            yield block
        if self.error is not None:
            raise StreamError(str(self.error))


class StreamCancelled(Exception):
    """The reading side gave up; the COPY thread stops."""
