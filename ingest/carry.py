"""Versions already shipped at or above the committed watermark, so no run ships one twice.

A run extracts every row visible to its snapshot with `last_updated >= low`, including rows
stamped at or after its own `high`: they are committed, so they must reach the warehouse in
this cycle (the "complete" guarantee, docs/PIPELINE.md), even when an older open transaction
holds `high` back. The next run starts at `low` = this `high` and would read those rows again.
So each run records the (primary key, last_updated) of every version it ships at or above
`high` in a small Parquet file, `_carry/<table>/<run_id>.parquet`, named in the manifest; the
next run drops those versions from its stream and carries forward the ones still at or above
its own `high`.
Filtering is vectorised per batch (Arrow `is_in` on a joined key), never per row in Python.
"""

from __future__ import annotations

import hashlib
import io
import threading
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.catalog import Table
from ingest.stream import WATERMARK_COLUMN
from ingest.watermark import parse_ts
from runtime.lake import CarryFile


class Carry:
    """Filters one table's batches against the previous carry and collects the next one.

    Safe to share between the threads streaming a table's key ranges in parallel."""

    def __init__(self, table: Table, previous: pa.Table | None, high: str) -> None:
        self.columns = [*table.primary_key, WATERMARK_COLUMN]
        unit = table.arrow_schema.field(WATERMARK_COLUMN).type
        self.high = _timestamp_scalar(parse_ts(high), unit)
        self.previous = (
            None
            if previous is None
            else previous.cast(pa.schema([table.arrow_schema.field(name) for name in self.columns]))
        )
        self.shipped = None if self.previous is None else _version_ids(self.previous, self.columns)
        self.kept: list[pa.Table] = []
        self.lock = threading.Lock()

    def filter(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch without versions shipped before; remembers its versions at/above high."""
        if self.shipped is not None and len(self.shipped):
            fresh = pc.invert(pc.is_in(_version_ids(batch, self.columns), value_set=self.shipped))
            batch = batch.filter(fresh)
        above = batch.filter(pc.greater_equal(batch.column(WATERMARK_COLUMN), self.high))
        if above.num_rows:
            with self.lock:
                self.kept.append(pa.Table.from_batches([above.select(self.columns)]))
        return batch

    def next_carry(self) -> pa.Table | None:
        """Versions the next run must not ship again: this run's and the previous carry's
        still at or above `high`. None when there are none."""
        tables = list(self.kept)
        if self.previous is not None:
            still = pc.greater_equal(self.previous.column(WATERMARK_COLUMN), self.high)
            tables.append(self.previous.filter(still))
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return None
        return pa.concat_tables([t.cast(tables[0].schema) for t in tables])


def read_carry(s3: Any, bucket: str, carry: CarryFile | None) -> pa.Table | None:
    """The carry a manifest's table entry names, or None (none, or an older manifest)."""
    if carry is None:
        return None
    body = s3.get_object(Bucket=bucket, Key=carry.key)["Body"].read()
    if hashlib.sha256(body).hexdigest() != carry.sha256:
        raise ValueError(f"carry file {carry.key} does not match its manifest's sha256")
    return pq.read_table(io.BytesIO(body))


def write_carry(s3: Any, bucket: str, key: str, table: pa.Table) -> CarryFile:
    """Upload the carry (never overwriting) and return its manifest entry."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    body = sink.getvalue()
    s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
    return CarryFile(key, table.num_rows, hashlib.sha256(body).hexdigest())


_EPOCH = datetime(1970, 1, 1)
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _timestamp_scalar(value: datetime, unit: pa.DataType) -> pa.Scalar:
    """`value` as a scalar of the column's timestamp type, rounded up to its unit, so that
    `column >= scalar` means `column >= value`. Built from an integer: `pa.scalar(datetime)`
    imports pandas (~0.5 s on the first extract of a process) to check for its types, and so
    does any conversion from Python objects; an array over an 8-byte buffer does not."""
    micros = (value - _EPOCH) // timedelta(microseconds=1)
    per_second = _PER_SECOND[unit.unit]
    ticks = -(-micros * per_second // 1_000_000)  # ceiling division
    buffer = pa.py_buffer(ticks.to_bytes(8, "little", signed=True))
    return pa.Array.from_buffers(unit, 1, [None, buffer])[0]


def _version_ids(data: pa.Table | pa.RecordBatch, columns: list[str]) -> pa.Array:
    """One string per row: its key columns and last_updated, joined."""
    parts = [pc.cast(data.column(name), pa.string()) for name in columns]
    joined = pc.binary_join_element_wise(*parts, "\x1f")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined
