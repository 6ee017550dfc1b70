"""Operator actions on the load queue: skip the manifest that blocks it, list failures."""

from __future__ import annotations

import contextlib

from lambda_loader import failures, ledger
from lambda_loader.load import APPLICATION_NAME, prepare
from runtime import lake, logs
from runtime.config import Settings


class SkipRefused(ValueError):
    """The skip would break ordering or hide nothing; the message says why."""


def skip_manifest(settings: Settings, seq: int, reason: str, *, run_id: str | None = None) -> str:
    """Record manifest `seq` as skipped (with the reason) so later manifests can load.

    Only the oldest pending manifest can be skipped: skipping a later one would let the queue
    jump over the manifests before it. Returns the skipped manifest's key.

    The skip is also recorded in the lake (`lake.mark_skipped`), so the extract re-covers the
    skipped window instead of starting from its watermark. The marker is written first, under
    the ledger lock, then the ledger entry commits: a crash in between leaves a marker with no
    ledger entry, so the window is extracted again while the manifest may still load (versions
    twice in raw, once in the marts); never a ledger skip the extract does not know about,
    which would lose the window's rows. Retrying the skip finds the marker and goes on."""
    if not reason.strip():
        raise SkipRefused("a skip needs a reason (--reason TEXT): it is kept in the ledger")
    run_id = run_id or logs.new_run_id()
    log = logs.run_logger(__name__, run_id, step="load")
    conn = settings.warehouse_connection(application_name=APPLICATION_NAME)
    try:
        prepare(conn)
        conn.run("BEGIN")
        ledger.lock(conn)
        status = ledger.status_of(conn, seq)
        if status is not None:
            raise SkipRefused(f"manifest {seq} is already {status}")
        s3 = settings.client("s3")
        pending = lake.committed_after(s3, settings.ingestion_bucket, ledger.last_seq(conn))
        if not pending:
            raise SkipRefused(f"manifest {seq} is not pending: nothing is waiting to load")
        oldest, key = pending[0]
        if oldest != seq:
            raise SkipRefused(
                f"manifest {seq} is not the oldest pending manifest ({oldest}); "
                "only the manifest that blocks the queue can be skipped"
            )
        lake.mark_skipped(s3, settings.ingestion_bucket, seq, reason=reason, run_id=run_id)
        ledger.record_skipped(conn, seq=seq, manifest_key=key, run_id=run_id, reason=reason)
        failures.resolve(conn, seq, f"skipped: {reason}")
        conn.run("COMMIT")
    finally:
        with contextlib.suppress(Exception):
            conn.close()  # an open transaction (a refused skip) rolls back with the connection
    log.warning("manifest skipped by operator", manifest=key, seq=seq, reason=reason)
    return key


def list_failures(settings: Settings, *, include_resolved: bool = False) -> list[failures.Failure]:
    conn = settings.warehouse_connection(application_name=APPLICATION_NAME)
    try:
        prepare(conn)
        return failures.listing(conn, include_resolved=include_resolved)
    finally:
        conn.close()
