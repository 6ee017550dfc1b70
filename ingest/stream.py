"""Stream one slice of a table out of Postgres as Arrow record batches.

Both paths run a COPY on a background thread through pg8000's `stream=` and hand CSV text
through a small bounded queue to `pyarrow.csv.open_csv`, which parses it with the explicit
schema from the catalog: memory is a few blocks, whatever the table size.

- Tables with a single integer key (every totesys table) use *chunked* CSV: the server formats
  each row as a record literal (`row(...)::text`: NULL is an empty unquoted field, every other
  value that needs it is quoted with `"` and `\\` doubled) and aggregates the rows of each key
  range of `CHUNK_KEYS` ids into one value, sent by `COPY … (FORMAT binary)`. pg8000 handles
  one protocol message per row, at ~4 µs each in Python; with a message per chunk instead, the
  client's cost per row is Arrow's C++ parsing alone, which is what brings the extract near a
  raw COPY (see tests/benchmarks/bench_extract.py and ingest/README.md).
- Any other table uses `COPY (SELECT …) TO STDOUT (FORMAT csv, FORCE_QUOTE *)`: every non-NULL
  value quoted, so an unquoted empty field is NULL and `""` the empty string.

Either way NULL and '' stay distinct and values stay text until Arrow types them.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from ingest.catalog import Table
from totes.db import qualified, quote_ident

BLOCK_BYTES = 8 << 20
CHUNK_KEYS = 16_384  # ids per server-side chunk: ~2 MB of CSV for a totesys table
BATCH_ROWS = 131_072  # rows per yielded batch (and Parquet row group) on the chunked path
QUEUE_DEPTH = 16  # chunks in flight per stream: the server runs ahead while Parquet is written
WATERMARK_COLUMN = "last_updated"
_INTEGER_TYPES = ("int2", "int4", "int8")


@dataclass(frozen=True)
class Slice:
    """Which rows of a table: `low <= last_updated` (low None: from the beginning), below
    `high` when one is given, optionally only primary keys in `[key_low, key_high)`
    (integer single-column keys). The pipeline reads with no `high`: every visible row."""

    low: str | None
    high: str | None = None
    key_low: int | None = None
    key_high: int | None = None


class StreamError(RuntimeError):
    """Streaming a table failed; the message names the table."""


def stream_batches(
    conn: Any,
    table: Table,
    rows: Slice,
    *,
    server_chunks: bool = True,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[pa.RecordBatch]:
    """Yield the slice's rows as record batches with exactly `table.arrow_schema`.

    `conn` must be inside the transaction whose snapshot is being extracted; the COPY runs on
    it from a helper thread while this generator is consumed. `server_chunks=False` forces the
    plain CSV COPY (less CPU on the database, more in Python)."""
    chunked = server_chunks and integer_key(table) is not None
    if chunked and (rows.key_low is None or rows.key_high is None):
        span = key_span(conn, table)
        if span is None:
            return
        rows = replace(rows, key_low=span[0], key_high=span[1] + 1)
    sql = _bind_slice(conn, table, rows, chunked=chunked)
    source = _BlockQueue(depth=QUEUE_DEPTH if chunked else 2)  # plain blocks are 8 MB
    copier = threading.Thread(
        target=_copy_into,
        args=(conn, sql, source, block_bytes, chunked),
        daemon=True,
        name=f"copy-{table.name}",
    )
    copier.start()
    try:
        if source.at_eof():
            return
        yield from _parse(source, table, block_bytes, chunked=chunked)
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


def integer_key(table: Table) -> str | None:
    """The table's key column when it is a single integer column, else None."""
    if len(table.primary_key) != 1:
        return None
    column = table.column(table.primary_key[0])
    return column.name if column is not None and column.base_type in _INTEGER_TYPES else None


def key_span(conn: Any, table: Table) -> tuple[int, int] | None:
    """(min, max) of the integer key in the current snapshot; None when the table is empty."""
    key = quote_ident(integer_key(table) or "")
    [[first, last]] = conn.run(
        f"select min({key}), max({key}) from {qualified(table.schema, table.name)}"  # noqa: S608 - quoted identifiers
    )
    return None if first is None else (int(first), int(last))


def _bind_slice(conn: Any, table: Table, rows: Slice, *, chunked: bool) -> str:
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
        values["key_low"] = (str(rows.key_low), "bigint")
        values["key_high"] = (str(rows.key_high), "bigint")
        values["chunk"] = (str(CHUNK_KEYS), "bigint")
    for name, (value, _) in values.items():
        conn.run("select set_config(:name, :value, true)", name=f"totes.{name}", value=value)
    bound = (
        ", ".join(
            f"current_setting('totes.{name}')::{kind} as {name}"
            for name, (_, kind) in values.items()
        )
        or "1 as unbounded"
    )
    source = f"{qualified(table.schema, table.name)} as t"
    if not chunked:
        if rows.key_low is not None:
            key = f"t.{quote_ident(table.primary_key[0])}"
            where += [f"{key} >= p.key_low", f"{key} < p.key_high"]
        exprs = ", ".join(f"t.{quote_ident(c.name)}" for c in table.columns)
        return (
            f"copy (select {exprs} from (select {bound}) as p, {source}"  # noqa: S608 - identifiers quoted, values bound via set_config
            f" where {' and '.join(where)}) to stdout (format csv, force_quote *)"
        )
    key = f"t.{quote_ident(integer_key(table) or '')}"
    where += [f"{key} >= g.start", f"{key} < least(g.start + p.chunk, p.key_high)"]
    # row(null, t.*, null)::text is "(,<fields>,)": the record literal's parentheses become
    # two extra unquoted fields the parser skips, at a fraction of the cost of trimming them.
    return (
        f"copy (select c.csv from (select {bound}) as p"  # noqa: S608 - identifiers quoted, values bound via set_config
        " cross join generate_series(p.key_low, p.key_high - 1, p.chunk) as g(start)"
        " cross join lateral (select string_agg(row(null, t.*, null)::text, E'\\n')"
        f" || E'\\n' as csv from {source} where {' and '.join(where)}) as c"
        " where c.csv is not null) to stdout (format binary)"
    )


def _parse(
    source: _BlockQueue, table: Table, block_bytes: int, *, chunked: bool
) -> Iterator[pa.RecordBatch]:
    target = table.arrow_schema
    # Chunked rows carry the record literal's "(" and ")" as first and last fields; NUL can
    # not be in a Postgres identifier, so these names never clash with a column.
    names = ["\x00(", *target.names, "\x00)"] if chunked else target.names
    read = pacsv.ReadOptions(column_names=names, block_size=block_bytes)
    parse = pacsv.ParseOptions(
        newlines_in_values=True,
        # Record literals escape a backslash as \\ (and a quote as "", like CSV).
        escape_char="\\" if chunked else False,
    )
    convert = pacsv.ConvertOptions(
        column_types=target,
        include_columns=target.names,
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        null_values=[""],
        true_values=["t"],
        false_values=["f"],
    )
    if not chunked:
        for batch in pacsv.open_csv(source, read, parse, convert):
            if batch.num_rows:
                yield batch.cast(target)
        return
    # Each chunk holds whole rows, so it parses on its own (read_csv uses every core, faster
    # than the streaming reader); chunks are gathered into batches of BATCH_ROWS rows, which
    # become the Parquet row groups.
    pending: list[pa.Table] = []
    rows = 0
    for chunk in source.blocks():
        part = pacsv.read_csv(pa.py_buffer(chunk), read, parse, convert)
        pending.append(part)
        rows += part.num_rows
        if rows >= BATCH_ROWS:
            yield _combined(pending, target)
            pending, rows = [], 0
    if rows:
        yield _combined(pending, target)


def _combined(parts: list[pa.Table], target: pa.Schema) -> pa.RecordBatch:
    return pa.concat_tables(parts).combine_chunks().to_batches()[0].cast(target)


def _copy_into(conn: Any, sql: str, source: _BlockQueue, block_bytes: int, chunked: bool) -> None:
    buffered = io.BufferedWriter(_QueueSink(source), buffer_size=block_bytes)
    try:
        conn.run(sql, stream=_BinaryCopyText(source) if chunked else buffered)
        buffered.flush()
    except BaseException as err:  # handed to the reading side, which raises it
        source.fail(err)
    finally:
        source.finish()


class _BlockQueue(io.RawIOBase):
    """A bounded hand-off of byte blocks from the COPY thread to the CSV reader, readable as a
    file. Bounded so a slow reader slows the COPY instead of buffering the table."""

    _EOF = object()

    def __init__(self, depth: int = 2) -> None:
        super().__init__()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._pending = b""
        self._eof = False
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

    # ---- consumer side (a read-only file for pyarrow)
    def readable(self) -> bool:
        return True

    def at_eof(self) -> bool:
        if not self._pending and not self._eof:
            self._next()
        return self._eof and not self._pending

    def read(self, size: int = -1) -> bytes:
        if not self._pending and not self._eof:
            self._next()
        if size < 0 or size >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def blocks(self) -> Iterator[bytes]:
        """Every block until the producer finishes (a file's read() for the CSV path)."""
        while True:
            if not self._pending and not self._eof:
                self._next()
            if self._eof and not self._pending:
                return
            block, self._pending = self._pending, b""
            yield block

    def _next(self) -> None:
        block = self._queue.get()
        if block is self._EOF:
            self._eof = True
            if self.error is not None:
                raise StreamError(str(self.error))
        else:
            self._pending = block


class StreamCancelled(Exception):
    """The reading side gave up; the COPY thread stops."""


class _QueueSink(io.RawIOBase):
    def __init__(self, target: _BlockQueue) -> None:
        super().__init__()
        self._target = target

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._target.put(bytes(data))
        return len(data)


class _BinaryCopyText(io.RawIOBase):
    """Unwraps `COPY … (FORMAT binary)` of one text column: puts each value (a chunk of CSV
    rows) on `target`. Messages may split anywhere; this runs per chunk, not per row."""

    _SIGNATURE = b"PGCOPY\n\xff\r\n\x00"

    def __init__(self, target: Any) -> None:
        super().__init__()
        self._target = target
        self._buffer = bytearray()
        self._header = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        self._drain()
        return len(data)

    def _drain(self) -> None:
        buf, pos = self._buffer, 0
        if not self._header:
            if len(buf) < 19:
                return
            if bytes(buf[:11]) != self._SIGNATURE:
                raise StreamError("COPY binary stream without its signature")
            pos = 19 + int.from_bytes(buf[15:19], "big")
            self._header = True
        view = memoryview(buf)
        try:
            while len(buf) - pos >= 2:
                fields = int.from_bytes(buf[pos : pos + 2], "big", signed=True)
                if fields == -1:  # the trailer
                    pos += 2
                    continue
                if fields != 1:
                    raise StreamError(f"expected one column per COPY row, got {fields}")
                if len(buf) - pos < 6:
                    break
                size = int.from_bytes(buf[pos + 2 : pos + 6], "big", signed=True)
                if size < 0:  # NULL: an empty chunk (filtered out by the query anyway)
                    pos += 6
                    continue
                if len(buf) - pos - 6 < size:
                    break
                self._target.put(bytes(view[pos + 6 : pos + 6 + size]))
                pos += 6 + size
        finally:
            view.release()
        del buf[:pos]
