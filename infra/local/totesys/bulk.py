"""Bulk-load an Arrow table with `COPY ... FROM STDIN (FORMAT csv)` through pg8000.

pyarrow writes the CSV (typed values, NULL as an empty unquoted field, "" for an empty string,
which is exactly how Postgres's CSV format tells them apart) and pg8000 streams it from an
iterator of byte chunks of about 1 MB: large enough that per-message overhead vanishes, small
enough that memory stays flat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pg8000.native
import pyarrow as pa
import pyarrow.csv as pacsv

from runtime.db import quote_ident

CHUNK_BYTES = 1 << 20
_FIRST_BATCH_ROWS = 4096

RowsSent = Callable[[int], None]


def copy_table(
    conn: pg8000.native.Connection,
    table: str,
    data: pa.Table,
    on_rows: RowsSent | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> int:
    """COPY every row of `data` into `table` (its columns named as `data`'s); returns the count."""
    columns = ", ".join(quote_ident(name) for name in data.column_names)
    conn.run(
        f"COPY {quote_ident(table)} ({columns}) FROM STDIN WITH (FORMAT csv)",
        stream=csv_chunks(data, chunk_bytes, on_rows),
    )
    copied = conn.row_count
    if copied != data.num_rows:
        raise RuntimeError(f"COPY into {table} wrote {copied} rows, expected {data.num_rows}")
    return copied


def csv_chunks(
    data: pa.Table, chunk_bytes: int = CHUNK_BYTES, on_rows: RowsSent | None = None
) -> Iterator[bytes]:
    """Headerless CSV of `data` as byte chunks of roughly `chunk_bytes` (whole rows each)."""
    options = pacsv.WriteOptions(include_header=False)
    rows_per_chunk = _FIRST_BATCH_ROWS
    offset = 0
    while offset < data.num_rows:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(data.slice(offset, rows_per_chunk), sink, options)
        chunk = sink.getvalue().to_pybytes()
        offset += rows_per_chunk
        if on_rows:
            on_rows(min(offset, data.num_rows))
        yield chunk
        # Size the next slice from this one's bytes per row.
        rows_per_chunk = max(1, rows_per_chunk * chunk_bytes // max(1, len(chunk)))
