"""Stream one slice of a table out of Postgres as Arrow record batches.

`COPY (SELECT …) TO STDOUT (FORMAT csv, FORCE_QUOTE *)` runs on a background thread through
pg8000's `stream=`; pg8000 hands over one CopyData message (one row) per `write` call, which
lands in a C-level `io.BufferedWriter`, so Python sees the data once per block, not per row.
Full blocks travel through a small bounded queue to `pyarrow.csv.open_csv`, which parses them
with the explicit schema from the catalog. Memory is a few blocks, whatever the table size.

FORCE_QUOTE * quotes every non-NULL value, so an unquoted empty field is NULL and `""` is the
empty string: NULL and '' stay distinct.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from ingest.catalog import Table
from totes.db import qualified, quote_ident

BLOCK_BYTES = 8 << 20
WATERMARK_COLUMN = "last_updated"


@dataclass(frozen=True)
class Slice:
    """Which rows of a table: `low <= last_updated < high` (low None: from the beginning),
    optionally only primary keys in `[key_low, key_high)` (integer single-column keys)."""

    low: str | None
    high: str
    key_low: int | None = None
    key_high: int | None = None


class StreamError(RuntimeError):
    """Streaming a table failed; the message names the table."""


def stream_batches(
    conn: Any, table: Table, rows: Slice, *, block_bytes: int = BLOCK_BYTES
) -> Iterator[pa.RecordBatch]:
    """Yield the slice's rows as record batches with exactly `table.arrow_schema`.

    `conn` must be inside the transaction whose snapshot is being extracted; the COPY runs on
    it from a helper thread while this generator is consumed."""
    sql = _bind_slice(conn, table, rows)
    source = _BlockQueue()
    copier = threading.Thread(
        target=_copy_into,
        args=(conn, sql, source, block_bytes),
        daemon=True,
        name=f"copy-{table.name}",
    )
    copier.start()
    try:
        if source.at_eof():
            return
        yield from _parse(source, table, block_bytes)
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


def _bind_slice(conn: Any, table: Table, rows: Slice) -> str:
    """The COPY statement for the slice. COPY takes no bind parameters, so the values are
    bound into transaction-local settings with set_config and read back in the query."""
    if table.column(WATERMARK_COLUMN) is None:
        raise StreamError(f"{table.schema}.{table.name} has no {WATERMARK_COLUMN} column")
    values = {"totes.high": rows.high}
    watermark = quote_ident(WATERMARK_COLUMN)
    where = [f"{watermark} < current_setting('totes.high')::timestamp"]
    if rows.low is not None:
        values["totes.low"] = rows.low
        where.append(f"{watermark} >= current_setting('totes.low')::timestamp")
    if rows.key_low is not None and rows.key_high is not None:
        key = quote_ident(table.primary_key[0])
        values["totes.key_low"] = str(rows.key_low)
        values["totes.key_high"] = str(rows.key_high)
        where.append(f"{key} >= current_setting('totes.key_low')::bigint")
        where.append(f"{key} < current_setting('totes.key_high')::bigint")
    for name, value in values.items():
        conn.run("select set_config(:name, :value, true)", name=name, value=value)
    select = ", ".join(_select_expression(c.name, c.base_type) for c in table.columns)
    return (
        f"copy (select {select} from {qualified(table.schema, table.name)}"  # noqa: S608 - identifiers quoted, values bound via set_config
        f" where {' and '.join(where)}) to stdout (format csv, force_quote *)"
    )


def _select_expression(name: str, base_type: str) -> str:
    column = quote_ident(name)
    if base_type == "timestamptz":
        # Printed as UTC wall-clock without an offset (Arrow's CSV parser wants no "+00");
        # the batch is then cast to timestamp(tz=UTC).
        return f"({column} at time zone 'UTC') as {column}"
    return column


def _parse(source: _BlockQueue, table: Table, block_bytes: int) -> Iterator[pa.RecordBatch]:
    target = table.arrow_schema
    parse_types = {
        f.name: pa.timestamp(f.type.unit) if pa.types.is_timestamp(f.type) else f.type
        for f in target
    }
    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(column_names=target.names, block_size=block_bytes),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=parse_types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=[""],
            true_values=["t"],
            false_values=["f"],
        ),
    )
    for batch in reader:
        if batch.num_rows:
            yield batch.cast(target)


def _copy_into(conn: Any, sql: str, source: _BlockQueue, block_bytes: int) -> None:
    buffered = io.BufferedWriter(_QueueSink(source), buffer_size=block_bytes)
    try:
        conn.run(sql, stream=buffered)
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
