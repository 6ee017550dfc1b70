"""Download a data file to local disk and prove it is the file its manifest describes.

The file goes to a temporary file, not memory, so a Lambda's memory bounds only the record
batches in flight; it is hashed while it downloads (one pass over the bytes). Parquet needs its
footer before its data, which is why it is not streamed straight from S3 into COPY.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from lambda_loader.errors import FileCheckError
from runtime.lake import DataFile
from runtime.pg_types import Column

DOWNLOAD_CHUNK = 1 << 20


@contextlib.contextmanager
def verified_file(
    s3: Any, bucket: str, data_file: DataFile, columns: tuple[Column, ...], manifest_key: str
) -> Iterator[pq.ParquetFile]:
    """The data file, opened, once its bytes, row count and schema match the manifest."""
    fd, name = tempfile.mkstemp(prefix="totes-load-", suffix=".parquet")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = _download(s3, bucket, data_file.key, out, manifest_key)
        _check_bytes(data_file, digest, size, manifest_key)
        parquet = _open(path, data_file, manifest_key)
        try:
            check_parquet(parquet, data_file, columns, manifest_key)
            yield parquet
        finally:
            parquet.close()
    finally:
        path.unlink(missing_ok=True)


def check_parquet(
    parquet: pq.ParquetFile, data_file: DataFile, columns: tuple[Column, ...], manifest_key: str
) -> None:
    rows = parquet.metadata.num_rows
    if rows != data_file.rows:
        raise _error(
            data_file, manifest_key, f"holds {rows} rows, the manifest says {data_file.rows}"
        )
    actual = [(f.name, str(f.type)) for f in parquet.schema_arrow]
    expected = [(c.name, c.arrow_type) for c in columns]
    if actual != expected:
        diff = [f"{a} != {e}" for a, e in zip(actual, expected, strict=False) if a != e]
        if len(actual) != len(expected):
            diff.append(f"{len(actual)} columns, the manifest lists {len(expected)}")
        raise _error(
            data_file, manifest_key, "schema does not match the manifest: " + "; ".join(diff)
        )


def _download(s3: Any, bucket: str, key: str, out: Any, manifest_key: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(DOWNLOAD_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    except Exception as err:  # NoSuchKey, AccessDenied, a broken stream: all "cannot read it"
        code = getattr(err, "response", {}).get("Error", {}).get("Code")
        reason = "is missing" if code in ("NoSuchKey", "404") else f"cannot be read: {err}"
        raise FileCheckError(
            f"manifest {manifest_key}: data file s3://{bucket}/{key} {reason}", file=key
        ) from err
    return digest.hexdigest(), size


def _check_bytes(data_file: DataFile, digest: str, size: int, manifest_key: str) -> None:
    if size != data_file.bytes:
        raise _error(
            data_file,
            manifest_key,
            f"is {size} bytes, the manifest says {data_file.bytes} (truncated or replaced)",
        )
    if digest != data_file.sha256:
        raise _error(
            data_file,
            manifest_key,
            f"sha256 {digest} does not match the manifest's "
            f"{data_file.sha256} (corrupt or replaced)",
        )


def _open(path: Path, data_file: DataFile, manifest_key: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid/OSError for a damaged footer
        raise _error(data_file, manifest_key, f"is not readable Parquet: {err}") from err


def _error(data_file: DataFile, manifest_key: str, what: str) -> FileCheckError:
    return FileCheckError(
        f"manifest {manifest_key}: data file {data_file.key} {what}", file=data_file.key
    )
