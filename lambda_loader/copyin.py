"""Parquet → Arrow record batches → CSV bytes → `COPY … FROM STDIN`: the bulk path.

Why CSV: pg8000 speaks COPY in text or CSV, and Arrow's C++ CSV writer turns a record batch
into CSV far faster than any Python loop. `quoting_style="all_valid"` quotes every non-null
value, so an unquoted empty field is NULL and a quoted "" is the empty string: Postgres CSV
COPY then keeps NULL and '' apart. Timestamps print with their unit's full fraction
(`…00.000` for `timestamp[ms]`), so zero milliseconds survive.

Why chunks: pg8000 sends each item of an iterable as one CopyData message; ~1 MB items keep the
per-message overhead negligible, while a file object would be sent in 8 KiB pieces.
Memory is bounded by one record batch and its CSV rendering.
"""

from __future__ import annotations

import io
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

from lambda_loader.errors import FileCheckError
from lambda_loader.rawschema import LINEAGE_NAMES, RAW_SCHEMA
from runtime.db import qualified, quote_ident
from runtime.pg_types import Column

BATCH_ROWS = 65_536
CHUNK_BYTES = 1 << 20
PREFETCH = 4  # chunks rendered ahead of the socket: ~4 MB
_CSV = pacsv.WriteOptions(include_header=False, quoting_style="all_valid", batch_size=BATCH_ROWS)

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

    def arrays(self, length: int) -> list[pa.Array]:
        # Constant strings, which Postgres casts on input: Arrow's CSV writer formats a
        # zoned timestamp column some 100x slower than a string column, per row.
        values = (
            str(self.manifest_seq),
            self.run_id,
            self.source_file,
            self.loaded_at.isoformat(timespec="microseconds"),
        )
        return [pa.repeat(pa.scalar(v, pa.string()), length) for v in values]


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
    """COPY every row of `parquet` into raw.<table>; returns the rows the server took."""
    names = [c.name for c in columns] + list(LINEAGE_NAMES)
    column_list = ", ".join(quote_ident(n) for n in names)
    sql = (
        f"COPY {qualified(RAW_SCHEMA, table)} ({column_list}) "
        "FROM STDIN WITH (FORMAT csv, ENCODING 'UTF8')"
    )
    batches = checked_batches(parquet, columns, lineage.source_file, manifest_key)
    chunks = prefetched(csv_chunks(with_lineage(batches, lineage)))
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


def with_lineage(batches: Iterable[pa.RecordBatch], lineage: Lineage) -> Iterator[pa.RecordBatch]:
    names = list(LINEAGE_NAMES)
    cached: dict[int, list[pa.Array]] = {}
    for batch in batches:
        extra = cached.get(batch.num_rows)
        if extra is None:
            extra = cached[batch.num_rows] = lineage.arrays(batch.num_rows)
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, *extra], names=[*batch.schema.names, *names]
        )


def csv_chunks(batches: Iterable[pa.RecordBatch]) -> Iterator[memoryview]:
    """CSV renderings of the batches, cut into pieces of at most CHUNK_BYTES."""
    for batch in batches:
        buffer = io.BytesIO()
        pacsv.write_csv(batch, buffer, _CSV)
        view = buffer.getbuffer()
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
