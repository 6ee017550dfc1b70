"""Load every committed, not yet loaded manifest into the raw layer, oldest first.

One database transaction per manifest holds its DDL, its rows, its ledger entry and the
resolution of its earlier failures: a manifest is loaded completely or not at all, and a
re-delivered event, a re-run or a crash after commit finds it in the ledger and changes nothing.
Loaders running at once take turns through a transaction-level advisory lock and re-check the
ledger once they hold it, so each manifest is loaded once.

A manifest that fails stops the run: its failure is recorded (in a transaction of its own), an
ERROR is logged and `LoadFailed` is raised so the alarm fires. Later manifests wait for it,
because raw keeps history in order; an operator fixes the file or skips it (`admin`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import pg8000.native

from lambda_loader import copyin, deletions, failures, fetch, ledger, metrics, rawschema
from lambda_loader.errors import FileCheckError, LoadFailed, ManifestError, ManifestLoadError
from lambda_loader.result import LoadResult
from runtime import lake, logs
from runtime.config import Settings
from runtime.lake import DataFile, Manifest, TableEntry

APPLICATION_NAME = "totes-loader"


@dataclass
class _Progress:
    """Where a manifest's load has got to, so a failure can name the file it was on."""

    file: str | None = None


def run_load(
    settings: Settings, *, run_id: str | None = None, chunk_hook: copyin.ChunkHook | None = None
) -> LoadResult:
    """Load all pending manifests. `chunk_hook` is a fault-injection point for crash tests."""
    run_id = run_id or logs.new_run_id()
    log = logs.run_logger(__name__, run_id, step="load")
    result = LoadResult(run_id)
    s3 = settings.client("s3")
    bucket = settings.ingestion_bucket
    with logs.Timer() as timer:
        conn = settings.warehouse_connection(application_name=APPLICATION_NAME)
        try:
            prepare(conn)
            pending = lake.committed_after(s3, bucket, ledger.last_seq(conn))
            for position, (seq, key) in enumerate(pending):
                progress = _Progress()
                try:
                    loaded = _load_manifest(
                        conn, s3, bucket, seq, key, run_id, log, chunk_hook, progress
                    )
                except Exception as err:
                    result.pending = [s for s, _ in pending[position:]]
                    # The connection may be mid-COPY or dead; it is never reused after a failure.
                    _close(conn)
                    raise _failed(settings, log, result, seq, key, progress.file, err) from err
                if loaded is None:
                    result.already_loaded.append(seq)
                    continue
                result.loaded.append(seq)
                result.bytes += sum(f.bytes for t in loaded.tables for f in t.files)
                for entry in loaded.tables:
                    result.rows[entry.table] = result.rows.get(entry.table, 0) + entry.rows
                    if entry.reconcile is not None and entry.reconcile.deleted:
                        result.deleted[entry.table] = (
                            result.deleted.get(entry.table, 0) + entry.reconcile.deleted
                        )
        finally:
            _close(conn)
    log.info(
        "load finished",
        manifests=len(result.loaded),
        rows=sum(result.rows.values()),
        bytes=result.bytes,
        already_loaded=result.already_loaded,
        duration_s=timer.seconds,
    )
    metrics.publish(
        settings.client("cloudwatch"),
        log,
        rows_by_table=result.rows,
        manifests=len(result.loaded),
        failures=0,
    )
    return result


def prepare(conn: pg8000.native.Connection) -> None:
    """Create the raw schema and the bookkeeping tables (under the lock: concurrent CREATE
    ... IF NOT EXISTS of one table can still collide)."""
    conn.run("BEGIN")
    try:
        ledger.lock(conn)
        ledger.create_tables(conn)
        deletions.create_table(conn)
        failures.create_tables(conn)
        conn.run("COMMIT")
    except BaseException:
        conn.run("ROLLBACK")
        raise


def read_manifest(s3: Any, bucket: str, key: str) -> Manifest:
    """The manifest at `key`; a ManifestError naming it when it cannot be read or parsed."""
    try:
        return lake.read_manifest(s3, bucket, key)
    except lake.MalformedManifest as err:
        raise ManifestError(str(err), file=key) from err
    except Exception as err:  # botocore raises many kinds; each means "cannot read it"
        raise ManifestError(f"manifest {key}: cannot read it: {err}", file=key) from err


def _load_manifest(
    conn: pg8000.native.Connection,
    s3: Any,
    bucket: str,
    seq: int,
    key: str,
    run_id: str,
    log: Any,
    hook: copyin.ChunkHook | None,
    progress: _Progress,
) -> Manifest | None:
    """Load one manifest in one transaction; None when another loader already did."""
    progress.file = key
    doc = read_manifest(s3, bucket, key)
    progress.file = None
    with logs.Timer() as timer:
        conn.run("BEGIN")
        ledger.lock(conn)
        if ledger.status_of(conn, seq) is not None:
            conn.run("ROLLBACK")
            log.info("manifest already loaded by another loader", manifest=key, seq=seq)
            return None
        loaded_at = ledger.transaction_time(conn)
        rows: dict[str, int] = {}
        deleted: dict[str, int] = {}
        for entry in doc.tables:
            changes = rawschema.ensure_table(conn, entry, key, seq)
            if changes.any or changes.missing_from_source:
                log.info(
                    "raw table changed",
                    manifest=key,
                    table=entry.table,
                    table_created=changes.created,
                    added=changes.added,
                    widened=changes.widened,
                    missing_from_source=changes.missing_from_source,
                )
            rows[entry.table] = 0
            for data_file in entry.files:
                progress.file = data_file.key
                rows[entry.table] += _load_file(
                    conn, s3, bucket, doc, entry, data_file, run_id, loaded_at, log, hook
                )
            if entry.reconcile is not None and entry.reconcile.deletions is not None:
                progress.file = entry.reconcile.deletions.key
                deleted[entry.table] = deletions.load(conn, s3, bucket, doc, entry, loaded_at)
            progress.file = None
        ledger.record_loaded(conn, doc, rows, loaded_at)
        failures.resolve(conn, seq, "loaded")
        conn.run("COMMIT")
    log.info(
        "manifest loaded",
        manifest=key,
        seq=seq,
        rows=sum(rows.values()),
        bytes=sum(f.bytes for t in doc.tables for f in t.files),
        tables=rows,
        deleted=deleted,
        duration_s=timer.seconds,
    )
    return doc


def _load_file(
    conn: pg8000.native.Connection,
    s3: Any,
    bucket: str,
    doc: Manifest,
    entry: TableEntry,
    data_file: DataFile,
    run_id: str,
    loaded_at: Any,
    log: Any,
    hook: copyin.ChunkHook | None,
) -> int:
    with logs.Timer() as timer:
        with fetch.verified_file(s3, bucket, data_file, entry.columns, doc.key) as parquet:
            lineage = copyin.Lineage(doc.seq, doc.run_id, data_file.key, loaded_at)
            copied = copyin.copy_parquet(
                conn, entry.table, parquet, entry.columns, lineage, manifest_key=doc.key, hook=hook
            )
        if copied != data_file.rows:
            raise FileCheckError(
                f"manifest {doc.key}: data file {data_file.key}: COPY took {copied} rows, "
                f"the manifest says {data_file.rows}",
                file=data_file.key,
            )
    log.info(
        "file loaded",
        manifest=doc.key,
        seq=doc.seq,
        table=entry.table,
        file=data_file.key,
        rows=copied,
        bytes=data_file.bytes,
        duration_s=timer.seconds,
        loader_run_id=run_id,
    )
    return copied


def _failed(
    settings: Settings,
    log: Any,
    result: LoadResult,
    seq: int,
    key: str,
    file: str | None,
    err: Exception,
) -> LoadFailed:
    """Record the failure, log it, count it; the caller raises what this returns."""
    if isinstance(err, ManifestLoadError):
        file = err.file or file
        message = str(err)
    else:
        where = f", data file {file}" if file else ""
        message = f"manifest {key}{where}: {type(err).__name__}: {err}"
    try:
        conn = settings.warehouse_connection(application_name=APPLICATION_NAME)
        try:
            failures.record(conn, key=key, seq=seq, error=message, file=file, run_id=result.run_id)
        finally:
            _close(conn)
    except Exception as record_err:  # the warehouse may be what failed; the raise still alerts
        log.error(
            "could not record the load failure",
            manifest=key,
            seq=seq,
            error=f"{type(record_err).__name__}: {record_err}",
        )
    log.error(
        "load failed",
        manifest=key,
        seq=seq,
        file=file,
        error=message,
        loaded=result.loaded,
        pending=result.pending,
    )
    metrics.publish(
        settings.client("cloudwatch"),
        log,
        rows_by_table=result.rows,
        manifests=len(result.loaded),
        failures=1,
    )
    later = len(result.pending) - 1
    waiting = f"; {later} later manifest(s) wait for it" if later > 0 else ""
    return LoadFailed(f"{message}{waiting}", seq=seq, manifest_key=key, file=file, result=result)


def _close(conn: pg8000.native.Connection) -> None:
    # Closing aborts any open transaction on the server; a dead socket has nothing to close.
    with contextlib.suppress(Exception):
        conn.close()
