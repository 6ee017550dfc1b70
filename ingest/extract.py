"""One extract run: every business table's changed rows → Parquet, committed by a manifest.

`run_extract` is the plain function behind the Lambda handler, `totes extract` and the tests.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from ingest import metrics
from ingest.carry import Carry, read_carry, write_carry
from ingest.catalog import Table, discover_tables
from ingest.parquet_parts import ROWS_PER_FILE, write_parts
from ingest.reconcile import ReconcileOptions, Reconciler, batches_keys, source_marks
from ingest.stream import Slice, integer_key, key_span, stream_batches, watermark_index
from ingest.watermark import (
    Horizon,
    base_manifest,
    begin_snapshot,
    check_base,
    export_snapshot,
    read_horizon,
    table_low,
)
from runtime import db, lake
from runtime.config import Settings
from runtime.lake import DataFile, Manifest, TableEntry
from runtime.logs import new_run_id, run_logger


@dataclass(frozen=True)
class ExtractOptions:
    """Tuning and safety knobs; defaults suit the real database."""

    safety_lag_s: float = 300.0  # used only when other sessions' xact_start is not visible
    overlap_s: float = 0.0  # re-read before the committed watermark (skewed writer clocks)
    margin_s: float = 1.0  # between reading the horizon and a writer reporting its start
    clock_tolerance_s: float = 5.0  # how far a committed high may lead the database clock
    workers: int = 2  # parallel key-range streams for a large table
    parallel_min_rows: int = 200_000  # key span below which one stream is enough
    rows_per_file: int = ROWS_PER_FILE
    schema: str = "public"
    reconcile: ReconcileOptions = field(default_factory=ReconcileOptions)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ExtractOptions:
        """`EXTRACT_SAFETY_LAG_S`, `EXTRACT_OVERLAP_S`, `EXTRACT_WORKERS`,
        `EXTRACT_DELETE_SHARE`, `EXTRACT_CONTENT_ROWS_PER_CYCLE`: read at the edges (handler,
        CLI), never below them."""
        base = cls()
        guard = base.reconcile
        return cls(
            safety_lag_s=float(environ.get("EXTRACT_SAFETY_LAG_S", base.safety_lag_s)),
            overlap_s=float(environ.get("EXTRACT_OVERLAP_S", base.overlap_s)),
            workers=int(environ.get("EXTRACT_WORKERS", base.workers)),
            reconcile=ReconcileOptions(
                delete_share=float(environ.get("EXTRACT_DELETE_SHARE", guard.delete_share)),
                content_rows_per_cycle=int(
                    environ.get("EXTRACT_CONTENT_ROWS_PER_CYCLE", guard.content_rows_per_cycle)
                ),
            ),
        )


@dataclass(frozen=True)
class TableResult:
    table: str
    rows: int
    files: int
    bytes: int
    low: str | None
    high: str
    duration_s: float
    deleted: int = 0  # keys gone from the source, recorded in this run's manifest
    silent: int = 0  # of `rows`: versions changed without last_updated moving


@dataclass(frozen=True)
class ExtractResult:
    run_id: str
    seq: int
    committed: bool  # False: another run committed this seq first; nothing of ours is read
    tables: list[TableResult] = field(default_factory=list)
    duration_s: float = 0.0
    watermark_method: str = ""
    # Reconciliation's share (ingest/reconcile.py): seconds, of which the content window,
    # and bytes of state and deletions files written.
    reconcile_s: float = 0.0
    content_check_s: float = 0.0
    reconcile_bytes: int = 0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def deleted(self) -> int:
        return sum(t.deleted for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": self.rows, "deleted": self.deleted}


def run_extract(
    settings: Settings,
    *,
    run_id: str | None = None,
    options: ExtractOptions | None = None,
    s3: Any = None,
    cloudwatch: Any = None,
    after_files: Callable[[], None] | None = None,
) -> ExtractResult:
    """Extract every table's rows changed since its committed watermark and commit the run.

    Returns committed=False (after logging it) when a concurrent run won this seq. Raises on
    any failure after logging an ERROR line; nothing is committed then, so the next run
    re-covers the same range. `after_files` runs between the data files and the manifest
    (a fault-injection point for tests)."""
    run_id = run_id or new_run_id()
    options = options or ExtractOptions()
    log = run_logger("ingest.extract", run_id)
    started = time.perf_counter()
    try:
        s3 = s3 or settings.client("s3")
        result, lag_s = _extract(settings, run_id, options, s3, after_files, log, started)
    except Exception as err:
        log.error(
            "extract failed",
            error=f"{type(err).__name__}: {err}",
            duration_s=round(time.perf_counter() - started, 3),
        )
        raise
    if result.committed:
        rows = {t.table: t.rows for t in result.tables}
        metrics.publish(cloudwatch or settings.client("cloudwatch"), rows, lag_s, log)
    return result


def allow_deletes(
    settings: Settings, tables: list[str], *, reason: str, s3: Any = None
) -> list[str]:
    """Let the next run record `tables`' deletions past the guard, once: an allow marker for
    the manifest that run starts from (ingest/reconcile.py). Returns the markers' keys."""
    s3 = s3 or settings.client("s3")
    bucket = settings.ingestion_bucket
    latest = lake.latest_seq(s3, bucket)
    base = base_manifest(s3, bucket, latest, lake.skipped_seqs(s3, bucket))
    if base is None:
        raise ValueError("nothing is committed yet: there are no deletions to allow")
    run_id = new_run_id()
    for table in tables:
        lake.mark_allow_deletes(s3, bucket, base.seq, table, reason=reason, run_id=run_id)
    run_logger("ingest.extract", run_id).warning(
        "deletions allowed past the guard", tables=tables, base_seq=base.seq, reason=reason
    )
    return [lake.allow_deletes_key(base.seq, table) for table in tables]


def extract_table(
    settings: Settings,
    table_name: str,
    *,
    run_id: str | None = None,
    options: ExtractOptions | None = None,
    s3: Any = None,
) -> TableResult:
    """Write every row of one table to the lake WITHOUT committing a manifest: what the
    loader never reads. For benchmarks and one-off inspection, not for the pipeline."""
    run_id = run_id or new_run_id()
    options = options or ExtractOptions()
    log = run_logger("ingest.extract", run_id)
    conn = settings.totesys_connection(application_name="totes-extract", timeout=None)
    try:
        horizon = read_horizon(conn, safety_lag_s=options.safety_lag_s, margin_s=options.margin_s)
        begin_snapshot(conn)
        [table] = [t for t in discover_tables(conn, options.schema) if t.name == table_name]
        run = _Run(
            settings, run_id, options, s3 or settings.client("s3"), conn,
            export_snapshot(conn), datetime.now(UTC), log,
        )  # fmt: skip
        _, result = run.table(table, None, horizon)
        conn.run("rollback")
        return result
    finally:
        db.close(conn)


def _extract(
    settings: Settings,
    run_id: str,
    options: ExtractOptions,
    s3: Any,
    after_files: Callable[[], None] | None,
    log: Any,
    started: float,
) -> tuple[ExtractResult, float]:
    bucket = settings.ingestion_bucket
    latest = lake.latest_seq(s3, bucket)
    seq = (latest or 0) + 1
    # Skips are listed before the base is chosen: a skip recorded later is still above the
    # `skipped_through` this run commits, so the next run re-covers it.
    skipped = lake.skipped_seqs(s3, bucket)
    base = base_manifest(s3, bucket, latest, skipped)
    conn = settings.totesys_connection(application_name="totes-extract", timeout=None)
    try:
        horizon = read_horizon(conn, safety_lag_s=options.safety_lag_s, margin_s=options.margin_s)
        # Before any file is written: a refused watermark leaves the lake as it was.
        check_base(base, horizon, tolerance_s=options.clock_tolerance_s)
        # Read before the snapshot: a DELETE they do not count yet is counted by the next run.
        marks = source_marks(conn, options.schema)
        if horizon.method == "safety_lag":
            log.warning(
                "cannot see other sessions' transactions (needs pg_read_all_stats):"
                " using the safety lag",
                safety_lag_s=options.safety_lag_s,
            )
        begin_snapshot(conn)
        tables = discover_tables(conn, options.schema)
        snapshot_id = export_snapshot(conn)
        reconciler = Reconciler(
            conn, s3, bucket, base=base, seq=seq, run_id=run_id, detected_at=horizon.now,
            options=options.reconcile, log=log,
        )  # fmt: skip
        # Before any file is written: a refused deletion (DeletionsRefused) leaves the lake
        # as it was.
        reconciler.plan(tables, marks)
        run = _Run(
            settings, run_id, options, s3, conn, snapshot_id, datetime.now(UTC), log, reconciler
        )
        entries: list[TableEntry] = []
        results: list[TableResult] = []
        for table in tables:
            entry, table_result = run.table(table, base, horizon)
            entries.append(entry)
            results.append(table_result)
        conn.run("rollback")  # read only: nothing to commit; ends the exported snapshot
    finally:
        db.close(conn)
    if after_files is not None:
        after_files()
    manifest = lake.new_manifest(
        seq, run_id, entries, skipped_through=max(skipped) if skipped else None
    )
    committed = lake.commit_manifest(s3, bucket, manifest)
    duration = round(time.perf_counter() - started, 3)
    result = ExtractResult(
        run_id, seq, committed, results, duration, horizon.method,
        round(reconciler.seconds, 3), round(reconciler.content_seconds, 3),
        reconciler.bytes_written,
    )  # fmt: skip
    if committed:
        log.info(
            "extract committed",
            seq=seq,
            rows=result.rows,
            deleted=result.deleted,
            silent=sum(t.silent for t in results),
            bytes=sum(t.bytes for t in results),
            duration_s=duration,
            watermark=horizon.high,
            lag_s=horizon.lag_s,
        )
    else:
        log.warning(
            "extract lost the race: another run committed this seq; nothing committed",
            seq=seq,
            manifest=lake.manifest_key(seq),
        )
    return result, horizon.lag_s


@dataclass
class _Run:
    """What one run's tables share: the snapshot, the clients, the part numbering."""

    settings: Settings
    run_id: str
    options: ExtractOptions
    s3: Any
    conn: Any
    snapshot_id: str
    day: datetime
    log: Any
    reconciler: Reconciler | None = None
    keys_lock: threading.Lock = field(default_factory=threading.Lock)

    def table(
        self, table: Table, base: Manifest | None, horizon: Horizon
    ) -> tuple[TableEntry, TableResult]:
        started = time.perf_counter()
        # `base` is never a skipped manifest (base_manifest): neither its high nor its carry.
        previous = base.table(table.name) if base is not None else None
        low = table_low(previous, overlap_s=self.options.overlap_s)
        # A committed high never moves back, even if this run's horizon is earlier.
        high = max(horizon.high, low) if low is not None else horizon.high
        # Every visible row since `low` ships now; those at/above `high` are remembered so the
        # next run (which starts at `high`) does not ship them again (ingest/carry.py).
        shipped = previous.carry if previous is not None and low is not None else None
        carry = Carry(table, read_carry(self.s3, self.settings.ingestion_bucket, shipped), high)
        parts = itertools.count()
        lock = threading.Lock()

        def next_key() -> str:
            with lock:
                part = next(parts)
            return lake.part_key(table.name, self.run_id, self.day, part)

        slices = self._slices(table, low)
        shipped: list[pa.Array] = []
        if len(slices) == 1:
            files = self._write(self.conn, table, slices[0], next_key, carry, shipped)
        else:
            with ThreadPoolExecutor(len(slices), thread_name_prefix=table.name) as pool:
                chunks = pool.map(
                    lambda s: self._write_on_own_connection(table, s, next_key, carry, shipped),
                    slices,
                )
                files = sorted(itertools.chain.from_iterable(chunks), key=lambda f: f.key)
        reconciled, silent = (
            self.reconciler.finish(table, _keys(shipped))
            if self.reconciler is not None
            else (None, [])
        )
        if silent:
            # Rows changed without last_updated moving: shipped again, whole, from the same
            # snapshot, after the stream's parts (never through the carry: their
            # (key, last_updated) may be one the carry already lists).
            files += write_parts(
                stream_batches(self.conn, table, Slice(None, keys=tuple(silent))),
                table.arrow_schema,
                s3=self.s3,
                bucket=self.settings.ingestion_bucket,
                key_for=next_key,
                rows_per_file=self.options.rows_per_file,
            )
        carried = carry.next_carry()
        carry_entry = (
            write_carry(
                self.s3,
                self.settings.ingestion_bucket,
                lake.carry_key(table.name, self.run_id),
                carried,
            )
            if carried is not None
            else None
        )
        rows = sum(f.rows for f in files)
        size = sum(f.bytes for f in files)
        duration = round(time.perf_counter() - started, 3)
        self.log.info(
            "table extracted",
            table=table.name,
            rows=rows,
            files=len(files),
            bytes=size,
            duration_s=duration,
            watermark_low=low,
            watermark=high,
            streams=len(slices),
            deleted=reconciled.deleted if reconciled else 0,
            silent=len(silent),
        )
        entry = TableEntry(
            table=table.name,
            primary_key=table.primary_key,
            columns=table.columns,
            watermark_low=low,
            watermark_high=high,
            rows=rows,
            files=tuple(files),
            carry=carry_entry,
            reconcile=reconciled,
        )
        return entry, TableResult(
            table.name, rows, len(files), size, low, high, duration,
            reconciled.deleted if reconciled else 0, len(silent),
        )  # fmt: skip

    def _slices(self, table: Table, low: str | None) -> list[Slice]:
        """One slice, or key ranges of a large table with a single integer key. A window read
        through the last_updated index is one slice: each key range would read all of it."""
        if low is not None and watermark_index(self.conn, table):
            return [Slice(low, by_index=True)]
        whole = Slice(low)
        if self.options.workers < 2 or integer_key(table) is None:
            return [whole]
        span = key_span(self.conn, table)
        if span is None or span[1] - span[0] + 1 < self.options.parallel_min_rows:
            return [whole]
        first, last = span
        step = (last - first) // self.options.workers + 1
        return [Slice(low, None, start, start + step) for start in range(first, last + 1, step)]

    def _write(
        self,
        conn: Any,
        table: Table,
        rows: Slice,
        next_key: Callable[[], str],
        carry: Carry,
        shipped: list[pa.Array] | None = None,
    ) -> list[DataFile]:
        batches: Iterator[pa.RecordBatch] = (
            carry.filter(batch) for batch in stream_batches(conn, table, rows)
        )
        if shipped is not None and integer_key(table) is not None:
            batches = batches_keys(batches, integer_key(table) or "", shipped, self.keys_lock)
        return write_parts(
            batches,
            table.arrow_schema,
            s3=self.s3,
            bucket=self.settings.ingestion_bucket,
            key_for=next_key,
            rows_per_file=self.options.rows_per_file,
        )

    def _write_on_own_connection(
        self,
        table: Table,
        rows: Slice,
        next_key: Callable[[], str],
        carry: Carry,
        shipped: list[pa.Array] | None = None,
    ) -> list[DataFile]:
        conn = self.settings.totesys_connection(application_name="totes-extract", timeout=None)
        try:
            # The same snapshot as the main transaction: the slices add up to one consistent
            # read, whatever commits meanwhile.
            begin_snapshot(conn, self.snapshot_id)
            files = self._write(conn, table, rows, next_key, carry, shipped)
            conn.run("rollback")
            return files
        finally:
            db.close(conn)


def _keys(shipped: list[pa.Array]) -> pa.Array | None:
    """The keys the stream shipped, as one array (None: none)."""
    parts = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in shipped]
    parts = [p.cast(pa.int64()) for p in parts if len(p)]
    return pa.concat_arrays(parts) if parts else None
