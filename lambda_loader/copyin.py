"""Parquet → Arrow record batches → `COPY … FROM STDIN`: the bulk path.

Binary COPY first (`lambda_loader.pgbinary`): the server parses it at about half the CPU of
the same rows as CSV, and the server's parsing is what a bulk load waits for. Each value goes
in the binary form of the raw column's type as the catalog has it now.

CSV when the binary encoder cannot write a file exactly (a numeric of more than 18 digits,
nanosecond timestamps, …). Arrow's C++ CSV writer turns a record batch into CSV far faster
than any Python loop. Its default quoting ("needed") quotes every string value and no other:
an unquoted empty field is NULL and a quoted "" is the empty string, so Postgres CSV COPY keeps
NULL and '' apart (tests/lambda_loader/test_copyin.py pins it), while numbers, dates and
timestamps travel unquoted. Timestamps print with their unit's full fraction (`…00.000` for
`timestamp[ms]`), so zero milliseconds survive.

Either way only the data columns travel: the lineage columns (the same four values on every
row of a file) take theirs from their DEFAULTs, which read what `bind_lineage` set for the
transaction (lambda_loader/rawschema.py).

Why chunks: pg8000 sends each item of an iterable as one CopyData message; ~1 MB items keep the
per-message overhead negligible, while a file object would be sent in 8 KiB pieces. Memory is
bounded by one record batch and its rendering, a few of them ahead of the socket.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from queue import Full, Queue
from typing import Any

import pg8000.native
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lambda_loader import pgbinary
from lambda_loader.errors import FileCheckError
from lambda_loader.rawschema import LINEAGE_SETTINGS, RAW_SCHEMA, current_columns
from runtime.db import qualified, quote_ident
from runtime.pg_types import Column

BATCH_ROWS = 131_072  # the extract's row group size: one batch per row group
CHUNK_BYTES = 1 << 20
PREFETCH = 4  # chunks rendered ahead of the socket: ~4 MB
CSV_OPTIONS = pacsv.WriteOptions(
    include_header=False, quoting_style="needed", batch_size=BATCH_ROWS
)

# Called with (file key, chunk number) before each chunk goes to the server: a fault-injection
# point for crash tests (kill the process or the backend mid-COPY).
ChunkHook = Callable[[str, int], None]


@dataclass(frozen=True)
class Lineage:
    """The constant lineage values every row of one file gets."""

    manifest_seq: int
    run_id: str
    source_file: str
    loaded_at: datetime

    def settings(self) -> dict[str, str]:
        """The values as text, by the setting their column's DEFAULT reads."""
        return {
            LINEAGE_SETTINGS["_manifest_seq"]: str(self.manifest_seq),
            LINEAGE_SETTINGS["_run_id"]: self.run_id,
            LINEAGE_SETTINGS["_source_file"]: self.source_file,
            # With its offset: the same instant whatever the session's time zone.
            LINEAGE_SETTINGS["_loaded_at"]: self.loaded_at.isoformat(timespec="microseconds"),
        }


def bind_lineage(conn: pg8000.native.Connection, lineage: Lineage) -> None:
    """Set the lineage values for the rest of the current transaction (`set_config(…, true)`:
    outside a transaction they would be gone before the COPY, which the NOT NULL refuses)."""
    values = list(lineage.settings().items())
    conn.run(
        "SELECT " + ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(values))),
        **{f"n{i}": name for i, (name, _) in enumerate(values)},
        **{f"v{i}": value for i, (_, value) in enumerate(values)},
    )


def copy_parquet(
    conn: pg8000.native.Connection,
    table: str,
    parquet: pq.ParquetFile,
    columns: tuple[Column, ...],
    lineage: Lineage,
    *,
    manifest_key: str,
    hook: ChunkHook | None = None,
) -> int:
    """COPY every row of `parquet` into raw.<table>; returns the rows the server took.

    Runs inside the caller's transaction, on a raw table `rawschema.ensure_table` prepared."""
    batches = checked_batches(parquet, columns, lineage.source_file, manifest_key)
    encoder = pgbinary.encoder_for(columns, current_columns(conn, table), parquet.schema_arrow)
    if encoder is not None:
        names, options = encoder.copy_columns, "FORMAT binary"
        rendered = encoder.chunks(batches, CHUNK_BYTES)
    else:
        names, options = [c.name for c in columns], "FORMAT csv, ENCODING 'UTF8'"
        rendered = csv_chunks(batches)
    column_list = ", ".join(quote_ident(n) for n in names)
    sql = f"COPY {qualified(RAW_SCHEMA, table)} ({column_list}) FROM STDIN WITH ({options})"
    bind_lineage(conn, lineage)
    chunks = prefetched(rendered)
    try:
        conn.run(sql, stream=_announced(chunks, lineage.source_file, hook))
    finally:
        chunks.close()  # stops the rendering thread when COPY ended early
    return int(conn.row_count)


def checked_batches(
    parquet: pq.ParquetFile, columns: tuple[Column, ...], file_key: str, manifest_key: str
) -> Iterator[pa.RecordBatch]:
    """The file's record batches; a NULL in a column the manifest calls NOT NULL stops it."""
    required = [i for i, c in enumerate(columns) if not c.nullable]
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
        for i in required:
            if batch.column(i).null_count:
                raise FileCheckError(
                    f"manifest {manifest_key}: data file {file_key} has NULLs in column "
                    f"{columns[i].name!r}, which the manifest declares NOT NULL",
                    file=file_key,
                )
        yield batch


def csv_chunks(batches: Iterable[pa.RecordBatch]) -> Iterator[memoryview]:
    """CSV renderings of the batches, cut into pieces of at most CHUNK_BYTES."""
    for batch in batches:
        sink = pa.BufferOutputStream()  # Arrow's own buffer: no Python write call per piece
        pacsv.write_csv(batch, sink, CSV_OPTIONS)
        view = memoryview(sink.getvalue())
        for start in range(0, len(view), CHUNK_BYTES):
            yield view[start : start + CHUNK_BYTES]


def prefetched(chunks: Iterator[memoryview], depth: int = PREFETCH) -> Generator[memoryview]:
    """`chunks`, rendered in a thread up to `depth` ahead of the consumer.

    Reading Parquet and writing CSV (Arrow, GIL released) then overlaps with pg8000 sending the
    previous chunk, instead of the two taking turns. The bounded queue keeps memory bounded; an
    error while rendering is re-raised in the consumer."""
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not _put(queue, ("chunk", chunk), stop):
                    if stop.is_set():
                        return
        except BaseException as err:  # handed to the consumer, which raises it
            _put(queue, ("error", err), stop)
            return
        _put(queue, ("done", None), stop)

    worker = threading.Thread(target=produce, name="copyin-render", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def _put(queue: Queue[tuple[str, Any]], item: tuple[str, Any], stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            queue.put(item, timeout=0.1)
            return True
        except Full:
            continue
    return False


def _announced(
    chunks: Iterable[memoryview], file_key: str, hook: ChunkHook | None
) -> Iterator[memoryview]:
    for number, chunk in enumerate(chunks):
        if hook is not None:
            hook(file_key, number)
        yield chunk
