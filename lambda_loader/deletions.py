"""Deletions into the raw layer: `raw._deletions`, one append-only tombstone per deleted key.

A manifest's table entry names its deletions file (`reconcile.deletions`, written by the
extract's reconciliation); its rows are copied here in the same transaction as the manifest's
data files and ledger entry, so a deletion is loaded exactly when its manifest is. Like the
raw tables, this table may hold one deletion twice (a skipped manifest's window re-covered);
dbt keeps one per (table, key, last_updated of the deleted version).
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime
from typing import Any

import pg8000.native
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lambda_loader.errors import FileCheckError
from runtime.lake import CarryFile, Manifest, TableEntry

TABLE = "raw._deletions"
COLUMNS = ("key", "last_updated", "deleted_at")
_SCHEMA = pa.schema(
    [("key", pa.int64()), ("last_updated", pa.timestamp("ms")), ("deleted_at", pa.timestamp("ms"))]
)

_DDL = (
    """CREATE TABLE IF NOT EXISTS raw._deletions (
        table_name text NOT NULL,
        key bigint NOT NULL,
        last_updated timestamp(3),
        deleted_at timestamp(3) NOT NULL,
        _manifest_seq bigint NOT NULL,
        _run_id text NOT NULL,
        _source_file text NOT NULL,
        _loaded_at timestamptz NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS _deletions_table_key ON raw._deletions (table_name, key)",
    "CREATE INDEX IF NOT EXISTS _deletions_seq ON raw._deletions (_manifest_seq)",
)
_CSV = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")


def create_table(conn: pg8000.native.Connection) -> None:
    for statement in _DDL:
        conn.run(statement)


def load(
    conn: pg8000.native.Connection,
    s3: Any,
    bucket: str,
    manifest: Manifest,
    entry: TableEntry,
    loaded_at: datetime,
) -> int:
    """Copy the entry's deletions into raw._deletions; the rows copied (0: none)."""
    ref = entry.reconcile.deletions if entry.reconcile is not None else None
    if ref is None:
        return 0
    rows = _verified(s3, bucket, ref, manifest.key)
    lineage = {
        "table_name": entry.table,
        "_manifest_seq": str(manifest.seq),
        "_run_id": manifest.run_id,
        "_source_file": ref.key,
        "_loaded_at": loaded_at.isoformat(timespec="microseconds"),
    }
    full = pa.table(
        {
            "table_name": pa.array([lineage["table_name"]] * rows.num_rows, pa.string()),
            **{name: rows.column(name) for name in COLUMNS},
            **{
                name: pa.array([value] * rows.num_rows, pa.string())
                for name, value in lineage.items()
                if name != "table_name"
            },
        }
    )
    sink = io.BytesIO()
    pacsv.write_csv(full, sink, _CSV)
    columns = ", ".join(full.column_names)
    conn.run(f"COPY {TABLE} ({columns}) FROM STDIN WITH (FORMAT csv)", stream=[sink.getvalue()])
    return rows.num_rows


def _verified(s3: Any, bucket: str, ref: CarryFile, manifest_key: str) -> pa.Table:
    try:
        body = s3.get_object(Bucket=bucket, Key=ref.key)["Body"].read()
    except Exception as err:  # NoSuchKey, AccessDenied, a broken stream: all "cannot read it"
        raise FileCheckError(
            f"manifest {manifest_key}: deletions file {ref.key} cannot be read: {err}",
            file=ref.key,
        ) from err
    if hashlib.sha256(body).hexdigest() != ref.sha256:
        raise FileCheckError(
            f"manifest {manifest_key}: deletions file {ref.key} does not match its sha256",
            file=ref.key,
        )
    try:
        rows = pq.read_table(io.BytesIO(body))
    except Exception as err:  # pyarrow raises ArrowInvalid/OSError for damaged Parquet
        raise FileCheckError(
            f"manifest {manifest_key}: deletions file {ref.key} is not readable: {err}",
            file=ref.key,
        ) from err
    if rows.num_rows != ref.rows or rows.schema.remove_metadata() != _SCHEMA:
        raise FileCheckError(
            f"manifest {manifest_key}: deletions file {ref.key} holds {rows.num_rows} rows of"
            f" {rows.schema.names}, the manifest says {ref.rows} of {list(COLUMNS)}",
            file=ref.key,
        )
    return rows
