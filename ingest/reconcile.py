"""Deleted keys and changes that bypass `last_updated`, found with read-only privileges.

The watermark stream (ingest/stream.py) sees only rows whose `last_updated` moved. Everything
else, a DELETE, an `ON DELETE SET NULL` cascade, a manual fix without a timestamp, is found by
comparing the source with the table's *state* in the lake: the key space is cut into ranges of
4,096 keys (`page = key >> 12`); the state holds, per range, the number of rows, the sum of the
key hashes and the sum of the row hashes (the *index*, one small Parquet file), and the ranges'
rows as (key, last_updated, row hash) (the *pages* file, one row group per range). Both are
written only when a range changed, and the manifest names the index the next run compares
with; an idle run names its base's index again and writes nothing.

Per run and table (all from the run's one snapshot, before any data file is written):
- the key check: per-range count and key-hash sum of the whole table, compared with the index.
  A full scan costs ~1 s per million rows, so it runs only when something that every DELETE or
  TRUNCATE moves has moved since the base run: the table's cumulative deletes counter
  (`pg_stat_user_tables.n_tup_del`), its file node (TRUNCATE, a rewrite), the database's oid
  and the server's start time (stats lost in a crash, a failover, another database). A delete
  whose counter is flushed late is caught by the next run: the state only changes when checked;
- the content window: the count, key-hash and row-hash sums of 1/K of the ranges (a rotating
  window, `seq % K`, K = total rows / `content_rows_per_cycle`), so every range is compared at
  least once every K runs whatever the counters say;
- every range that differs is *drilled*: its rows now against its rows in the state give the
  deleted keys (with the last `last_updated` seen) and the rows whose hash changed.
The guard then refuses (DeletionsRefused, nothing written) a table losing more than
`delete_share` of its rows, or going empty, unless an allow marker names the base and table.

After the stream, the ranges it shipped rows in are drilled too (their state must stay exact),
and every drilled row whose hash changed but that the stream did not ship is a *silent*
version: shipped again as a full row in the table's data files. Re-shipping an unchanged
version is harmless (dbt keeps one version per key, last_updated and content hash), so every
doubt resolves to shipping. A parent's deletions drill the ranges of child rows whose
`ON DELETE SET NULL` key is now NULL (when few enough; the window catches the rest).
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.catalog import Table
from ingest.stream import WATERMARK_COLUMN, integer_key
from ingest.watermark import parse_ts
from runtime import lake
from runtime.copy_out import copy_out
from runtime.db import qualified, quote_ident
from runtime.lake import CarryFile, Manifest, Reconciliation
from runtime.pg_arrow import parse_copy_csv

PAGE_BITS = 12  # 4,096 keys per range
INDEX_SCHEMA = pa.schema(
    [
        ("page", pa.int64()),
        ("rows", pa.int64()),
        ("key_hash", pa.int64()),
        ("content_hash", pa.int64()),
        ("segment", pa.string()),  # the pages file holding the range's rows
        ("row_group", pa.int32()),  # the range's row group in it
    ]
)
# What the loader copies into raw._deletions (with the table's name and lineage).
DELETIONS_SCHEMA = pa.schema(
    [
        ("key", pa.int64()),
        (WATERMARK_COLUMN, pa.timestamp("ms")),
        ("deleted_at", pa.timestamp("ms")),
    ]
)
FINGERPRINT_VERSION = "totes-rowhash/1"


class DeletionsRefused(RuntimeError):
    """The guard refused a reconciliation; nothing was committed. The message says what to do."""


@dataclass(frozen=True)
class ReconcileOptions:
    delete_share: float = 0.5  # refuse deleting more than this share of a table's rows
    content_rows_per_cycle: int = 150_000  # rows hashed per run by the content window
    cascade_max_pages: int = 64  # child ranges drilled after a parent's deletions


@dataclass
class _Rows:
    """One table's rows of some ranges: key, last_updated, key hash, row hash (sorted by key)."""

    data: pa.Table

    def pages(self) -> set[int]:
        return set(_pages(self.data).to_pylist())

    def of(self, pages: Iterable[int]) -> pa.Table:
        wanted = pa.array(sorted(pages), pa.int64())
        return self.data.filter(pc.is_in(_pages(self.data), value_set=wanted))


@dataclass
class _Plan:
    """What phase one found for a table; phase two finishes it after the stream."""

    table: Table
    key: str
    previous: Reconciliation | None
    previous_index: pa.Table | None
    comparable: bool  # the previous row hashes cover the same columns: compare content
    mark: str
    drilled: set[int] = field(default_factory=set)
    current: pa.Table | None = None  # rows of the drilled ranges, now
    before: pa.Table | None = None  # their rows in the state
    deleted: pa.Table | None = None  # key, last_updated of each deleted key
    content_checked: tuple[int, int] | None = None
    baseline: bool = False  # no comparable state: every range is read, nothing is shipped
    allowed_by: str | None = None


class Reconciler:
    """Reconciles every table of one run; `plan` before the stream, `finish` after it."""

    def __init__(
        self,
        conn: Any,
        s3: Any,
        bucket: str,
        *,
        base: Manifest | None,
        seq: int,
        run_id: str,
        detected_at: str,
        options: ReconcileOptions,
        log: Any,
    ) -> None:
        self.conn, self.s3, self.bucket, self.base = conn, s3, bucket, base
        self.seq, self.run_id, self.detected_at = seq, run_id, detected_at
        self.options, self.log = options, log
        self.plans: dict[str, _Plan] = {}
        # What reconciliation cost this run (BENCHMARKS.md): seconds spent, of which in the
        # content window, and bytes written to the lake (state and deletions files).
        self.seconds = 0.0
        self.content_seconds = 0.0
        self.bytes_written = 0
        self._segments: dict[str, pq.ParquetFile] = {}
        self._lock = threading.Lock()

    # ---- phase one: before any file is written --------------------------------------------

    def plan(self, tables: list[Table], marks: dict[str, str]) -> None:
        """Compare every table with its state, drill what differs, apply the guard."""
        started = time.perf_counter()
        try:
            self._plan(tables, marks)
        finally:
            self.seconds += time.perf_counter() - started

    def _plan(self, tables: list[Table], marks: dict[str, str]) -> None:
        previous = {
            t.name: self.base.table(t.name).reconcile
            if self.base is not None and self.base.table(t.name) is not None
            else None
            for t in tables
        }
        total = sum(p.source_rows for p in previous.values() if p is not None)
        windows = max(1, math.ceil(total / max(1, self.options.content_rows_per_cycle)))
        for table in tables:
            key = integer_key(table)
            if key is None or table.column(WATERMARK_COLUMN) is None:
                self.log.warning(
                    "table not reconciled: needs a single integer primary key",
                    table=table.name,
                )
                continue
            plan = self._plan_table(
                table, key, previous[table.name], marks.get(table.name, ""), windows
            )
            self.plans[table.name] = plan
        self._cascade()
        for plan in self.plans.values():
            self._guard(plan)

    def _plan_table(
        self, table: Table, key: str, previous: Reconciliation | None, mark: str, windows: int
    ) -> _Plan:
        fingerprint = fingerprint_of(table, self._server_major())
        index = self._read_index(previous.state) if previous is not None else None
        comparable = previous is not None and previous.fingerprint == fingerprint
        plan = _Plan(table, key, previous, index, comparable, mark)
        if index is None:
            # First reconciliation (or a manifest from before it): the state starts here.
            plan.baseline = True
            plan.current = self._rows(table, key, None)
            plan.drilled = _Rows(plan.current).pages()
            plan.content_checked = _span(plan.drilled)
            return plan
        before = _summaries(index)
        differs: set[int] = set()
        if not comparable:
            # The row hashes cover other columns now: read everything, compare keys only.
            plan.baseline = True
            plan.current = self._rows(table, key, None)
            now = _summaries(_summarise(plan.current))
            differs = {
                p
                for p in set(before) | set(now)
                if before.get(p, (0, 0))[:2] != now.get(p, (0, 0))[:2]
            }
            plan.drilled = set(now) | differs
            plan.content_checked = _span(plan.drilled)
        elif windows == 1:
            # Small enough to compare every range's keys and content in every run.
            now_all = self._key_summary(table, key, None, content=True)
            differs = {p for p in set(before) | set(now_all) if before.get(p) != now_all.get(p)}
            plan.content_checked = _span(set(before) | set(now_all))
        else:
            if previous is None or previous.source_mark != mark or not mark:
                now_keys = self._key_summary(table, key, None)
                differs |= {
                    p
                    for p in set(before) | set(now_keys)
                    if before.get(p, (0, 0))[:2] != now_keys.get(p, (0, 0))[:2]
                }
            window = _window(sorted(before), self.seq, windows)
            if window is not None:
                plan.content_checked = window
                now_window = self._key_summary(table, key, window, content=True)
                differs |= {
                    p
                    for p in set(now_window) | {q for q in before if window[0] <= q <= window[1]}
                    if before.get(p) != now_window.get(p)
                }
        if plan.current is None:
            plan.drilled = differs
            plan.current = self._rows(table, key, differs) if differs else _empty_rows(table)
        plan.before = self._state_rows(plan, differs)
        plan.deleted = _deleted(plan.before, plan.current)
        return plan

    def _cascade(self) -> None:
        """A parent's deletions may have nulled child keys (ON DELETE SET NULL) without
        moving the child's last_updated: drill the child ranges holding such rows."""
        parents = {
            name for name, p in self.plans.items() if p.deleted is not None and len(p.deleted)
        }
        if not parents:
            return
        for child, parent, columns in self._set_null_keys():
            plan = self.plans.get(child)
            if parent not in parents or plan is None or plan.baseline or not plan.comparable:
                continue
            nulls = " or ".join(f"t.{quote_ident(c)} is null" for c in columns)
            pages = {
                int(page)
                for (page,) in self.conn.run(
                    f"select distinct (t.{quote_ident(plan.key)}::bigint >> {PAGE_BITS})"  # noqa: S608 - quoted identifiers
                    f" from {qualified(plan.table.schema, child)} as t where {nulls}"
                )
            } - plan.drilled
            if len(pages) > self.options.cascade_max_pages:
                self.log.info(
                    "cascade left to the content window: too many child ranges",
                    table=child,
                    parent=parent,
                    ranges=len(pages),
                )
                continue
            if not pages:
                continue
            more = self._rows(plan.table, plan.key, pages)
            plan.current = _concat(plan.current, more)
            plan.before = _concat(plan.before, self._state_rows(plan, pages))
            plan.drilled |= pages
            plan.deleted = _deleted(plan.before, plan.current)

    def _guard(self, plan: _Plan) -> None:
        previous_rows = plan.previous.source_rows if plan.previous is not None else 0
        deleted = len(plan.deleted) if plan.deleted is not None else 0
        if not deleted or previous_rows == 0:
            return
        remaining = _new_index_rows(plan)
        empty = remaining == 0
        if not empty and deleted <= self.options.delete_share * previous_rows:
            return
        assert self.base is not None  # a previous state comes from a base manifest
        marker = lake.allow_deletes_marker(self.s3, self.bucket, self.base.seq, plan.table.name)
        if marker is not None:
            plan.allowed_by = marker
            self.log.warning(
                "deletion guard let through by an operator's allow marker",
                table=plan.table.name,
                deleted=deleted,
                previous_rows=previous_rows,
                marker=marker,
            )
            return
        what = (
            f"table {plan.table.name} is empty where {previous_rows} rows were shipped before"
            if empty
            else f"{deleted} of {previous_rows} rows of {plan.table.name} are gone"
            f" (more than {self.options.delete_share:.0%})"
        )
        raise DeletionsRefused(
            f"refused to record deletions: {what} (a TRUNCATE, a wrong database or a restore?)."
            f" Nothing was committed. If the deletions are real, let them through once:"
            f" `totes extract --allow-deletes {plan.table.name} --reason TEXT`"
            f" (allow marker {lake.allow_deletes_key(self.base.seq, plan.table.name)})."
        )

    # ---- phase two: after the stream -------------------------------------------------------

    def finish(
        self, table: Table, shipped: pa.Array | None
    ) -> tuple[Reconciliation | None, list[int]]:
        """The table's reconciliation entry (its state and deletions written) and the keys of
        its silent versions, for the caller to ship. `shipped`: the keys the stream shipped."""
        started = time.perf_counter()
        try:
            return self._finish(table, shipped)
        finally:
            self.seconds += time.perf_counter() - started

    def _finish(
        self, table: Table, shipped: pa.Array | None
    ) -> tuple[Reconciliation | None, list[int]]:
        plan = self.plans.get(table.name)
        if plan is None:
            return None, []
        shipped_keys = pa.array([], pa.int64()) if shipped is None else pc.cast(shipped, pa.int64())
        if not plan.baseline and len(shipped_keys):
            touched = set(pc.unique(pc.shift_right(shipped_keys, PAGE_BITS)).to_pylist())
            touched -= plan.drilled
            if touched:
                plan.current = _concat(plan.current, self._rows(table, plan.key, touched))
                plan.before = _concat(plan.before, self._state_rows(plan, touched))
                plan.drilled |= touched
                # A range the key check did not flag (a counter not flushed yet) may still
                # have lost keys: recorded now, or the new state would forget them.
                plan.deleted = _deleted(plan.before, plan.current)
                self._guard(plan)
        silent: list[int] = []
        if not plan.baseline and plan.current is not None and len(plan.current):
            silent = _changed_keys(plan.before, plan.current, shipped_keys)
        state = self._write_state(plan)
        deletions = self._write_deletions(plan)
        entry = Reconciliation(
            state=state,
            fingerprint=fingerprint_of(table, self._server_major()),
            source_rows=_new_index_rows(plan),
            deleted=0 if deletions is None else deletions.rows,
            deletions=deletions,
            silent=len(silent),
            content_checked=plan.content_checked,
            allowed_by=plan.allowed_by,
            source_mark=plan.mark,
        )
        self.log.info(
            "table reconciled",
            table=table.name,
            ranges_drilled=len(plan.drilled),
            deleted=entry.deleted,
            silent=entry.silent,
            source_rows=entry.source_rows,
            baseline=plan.baseline,
            content_checked=plan.content_checked,
            state=state.key,
        )
        return entry, silent

    def _write_deletions(self, plan: _Plan) -> CarryFile | None:
        """`_deletions/<table>/<run_id>.parquet`: key, the last `last_updated` the state saw,
        and `deleted_at`, the source clock when this run read its horizon (the key was
        deleted after the base run's snapshot and before this run's)."""
        if plan.deleted is None or not len(plan.deleted):
            return None
        rows = plan.deleted.sort_by("key")
        table = pa.table(
            {
                "key": pc.cast(rows.column("key"), pa.int64()),
                WATERMARK_COLUMN: pc.cast(rows.column(WATERMARK_COLUMN), pa.timestamp("ms")),
                "deleted_at": pa.array(
                    [parse_ts(self.detected_at)] * rows.num_rows, pa.timestamp("ms")
                ),
            },
            schema=DELETIONS_SCHEMA,
        )
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        body = sink.getvalue()
        key = lake.deletions_key(plan.table.name, self.run_id)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        self.bytes_written += len(body)
        return CarryFile(key, table.num_rows, hashlib.sha256(body).hexdigest())

    def _write_state(self, plan: _Plan) -> CarryFile:
        if not plan.drilled and plan.previous is not None:
            return plan.previous.state  # nothing changed: the base's state stays current
        current = plan.current if plan.current is not None else _empty_rows(plan.table)
        pages_key = lake.state_key(plan.table.name, self.run_id, "pages")
        kept = _kept_index(plan)
        fresh = _summarise(current)
        # Rows sorted by key hold each range contiguously, in the order of `fresh` (by page):
        # slice them by the ranges' row counts (a filter per range would be quadratic).
        ordered = current.sort_by("key").select(["key", WATERMARK_COLUMN, "row_hash"])
        segment_rows: list[pa.Table] = []
        offset = 0
        for count in fresh.column("rows").to_pylist():
            segment_rows.append(ordered.slice(offset, count))
            offset += count
        if segment_rows:
            sink = io.BytesIO()
            schema = segment_rows[0].schema
            with pq.ParquetWriter(
                sink, schema, compression="zstd", use_dictionary=False,
                column_encoding={"key": "DELTA_BINARY_PACKED"},
            ) as writer:  # fmt: skip
                for rows in segment_rows:  # one row group per range: a drill reads only it
                    writer.write_table(rows, row_group_size=max(1, rows.num_rows))
            self.s3.put_object(
                Bucket=self.bucket, Key=pages_key, Body=sink.getvalue(), IfNoneMatch="*"
            )
            self.bytes_written += len(sink.getvalue())
        fresh = fresh.append_column(
            "segment", pa.array([pages_key] * fresh.num_rows, pa.string())
        ).append_column("row_group", pa.array(range(fresh.num_rows), pa.int32()))
        index = pa.concat_tables([kept, fresh.cast(INDEX_SCHEMA)]).sort_by("page")
        sink = io.BytesIO()
        pq.write_table(index, sink, compression="zstd")
        body = sink.getvalue()
        key = lake.state_key(plan.table.name, self.run_id, "index")
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        self.bytes_written += len(body)
        return CarryFile(key, index.num_rows, hashlib.sha256(body).hexdigest())

    # ---- reading the source -----------------------------------------------------------------

    def _key_summary(
        self, table: Table, key: str, window: tuple[int, int] | None, *, content: bool = False
    ) -> dict[int, tuple[int, int, int | None]]:
        """Per range: rows, key-hash sum and (with `content`) row-hash sum, now."""
        k = f"t.{quote_ident(key)}::bigint"
        where, params = "", {}
        if window is not None:
            where = f" where t.{quote_ident(key)} >= :low and t.{quote_ident(key)} < :high"
            params = {"low": window[0] << PAGE_BITS, "high": (window[1] + 1) << PAGE_BITS}
        hashed = f"sum({row_hash_sql(table)})::bigint" if content else "null::bigint"
        started = time.perf_counter()
        rows = self.conn.run(
            f"select ({k} >> {PAGE_BITS}), count(*)::bigint, sum(hashint8({k}))::bigint,"  # noqa: S608 - quoted identifiers, bound values
            f" {hashed} from {qualified(table.schema, table.name)} as t{where} group by 1",
            **params,
        )
        if content:
            self.content_seconds += time.perf_counter() - started
        return {
            int(page): (int(n), int(h), None if c is None else int(c))
            if content
            else (int(n), int(h))
            for page, n, h, c in rows
        }

    def _rows(self, table: Table, key: str, pages: set[int] | None) -> pa.Table:
        """key, last_updated, key hash, row hash of the rows in `pages` (None: all), by key."""
        k = f"t.{quote_ident(key)}"
        select = (
            f"{k}::bigint, t.{quote_ident(WATERMARK_COLUMN)}, hashint8({k}::bigint),"
            f" {row_hash_sql(table)}"
        )
        source = qualified(table.schema, table.name)
        if pages is None:
            sql = f"copy (select {select} from {source} as t order by 1) to stdout (format csv)"  # noqa: S608 - quoted identifiers
        else:
            # COPY takes no parameters: the ranges are bound as a transaction-local setting.
            self.conn.run(
                "select set_config('totes.pages', :pages, true)",
                pages="{" + ",".join(str(p) for p in sorted(pages)) + "}",
            )
            sql = (
                f"copy (select {select} from unnest(current_setting('totes.pages')::bigint[])"  # noqa: S608 - quoted identifiers, values bound via set_config
                f" as r(page) join {source} as t on {k} >= (r.page << {PAGE_BITS})"
                f" and {k} < ((r.page + 1) << {PAGE_BITS}) order by 1) to stdout (format csv)"
            )
        schema = _rows_schema(table)
        parts = [parse_copy_csv(block, schema) for block in copy_out(self.conn, sql)]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def _set_null_keys(self) -> list[tuple[str, str, list[str]]]:
        schema = next(iter(self.plans.values())).table.schema
        return [
            (child, parent, list(columns))
            for child, parent, columns in self.conn.run(_SET_NULL_SQL, schema=schema)
        ]

    def _server_major(self) -> int:
        if not hasattr(self, "_major"):
            self._major = (
                int(self.conn.run("select current_setting('server_version_num')")[0][0]) // 10000
            )
        return self._major

    # ---- reading the state ------------------------------------------------------------------

    def _read_index(self, ref: CarryFile) -> pa.Table:
        body = self.s3.get_object(Bucket=self.bucket, Key=ref.key)["Body"].read()
        if hashlib.sha256(body).hexdigest() != ref.sha256:
            raise ValueError(f"state index {ref.key} does not match its manifest's sha256")
        return pq.read_table(io.BytesIO(body)).cast(INDEX_SCHEMA)

    def _state_rows(self, plan: _Plan, pages: set[int]) -> pa.Table:
        """The state's rows of `pages` (those it has), checked against the index's sums."""
        schema = _rows_schema(plan.table)
        index = plan.previous_index
        if index is None or not pages:
            return schema.empty_table()
        wanted = index.filter(
            pc.is_in(index.column("page"), value_set=pa.array(sorted(pages), pa.int64()))
        )
        found = []
        for row in wanted.to_pylist():
            rows = self._segment(row["segment"]).read_row_group(row["row_group"])
            if (
                rows.num_rows != row["rows"]
                or int(pc.sum(pc.cast(rows.column("row_hash"), pa.int64())).as_py() or 0)
                != row["content_hash"]
            ):
                raise ValueError(
                    f"state pages {row['segment']} range {row['page']} do not match their index"
                )
            found.append(
                pa.table(
                    {
                        "key": rows.column("key"),
                        WATERMARK_COLUMN: rows.column(WATERMARK_COLUMN).cast(
                            schema.field(WATERMARK_COLUMN).type
                        ),
                        "key_hash": pa.nulls(rows.num_rows, pa.int32()),
                        "row_hash": rows.column("row_hash"),
                    }
                )
            )
        return pa.concat_tables(found).cast(schema) if found else schema.empty_table()

    def _segment(self, key: str) -> pq.ParquetFile:
        with self._lock:
            if key not in self._segments:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                self._segments[key] = pq.ParquetFile(io.BytesIO(body))
            return self._segments[key]


# ---- the source marks (cheap: the catalog and the statistics views) -----------------------------


def source_marks(conn: Any, schema: str) -> dict[str, str]:
    """Per table, a text that every DELETE or TRUNCATE changes (sooner or later): read before
    the snapshot, so a delete it does not count yet is counted by the next run's."""
    return {name: str(mark) for name, mark in conn.run(_MARKS_SQL, schema=schema)}


_MARKS_SQL = """
select c.relname,
       concat_ws('|', (select d.oid from pg_catalog.pg_database d
                       where d.datname = current_database()),
                 pg_catalog.pg_postmaster_start_time(), pg_catalog.pg_relation_filenode(c.oid),
                 pg_catalog.pg_stat_get_tuples_deleted(c.oid))
from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = :schema and c.relkind in ('r', 'p')
"""

_SET_NULL_SQL = """
select child.relname, parent.relname,
       array(select a.attname from unnest(con.conkey) as k(attnum)
             join pg_catalog.pg_attribute a
               on a.attrelid = con.conrelid and a.attnum = k.attnum)::text[]
from pg_catalog.pg_constraint con
join pg_catalog.pg_class child on child.oid = con.conrelid
join pg_catalog.pg_class parent on parent.oid = con.confrelid
join pg_catalog.pg_namespace n on n.oid = child.relnamespace
where con.contype = 'f' and con.confdeltype = 'n' and n.nspname = :schema
"""


# ---- hashing ------------------------------------------------------------------------------------


def row_hash_sql(table: Table, alias: str = "t") -> str:
    """A 32-bit hash of a row's columns. Enums and other text-like types are hashed as their
    text (an enum's own hash is its label's oid, which a restore changes); `hash_record`
    hashes each column with its type's hash, ~3x faster than hashing the row's text."""
    parts = []
    for column in table.columns:
        ref = f"{quote_ident(alias)}.{quote_ident(column.name)}"
        parts.append(f"{ref}::text" if pa.types.is_string(column.arrow) else ref)
    return f"hash_record(row({', '.join(parts)}))"


def fingerprint_of(table: Table, server_major: int) -> str:
    """What a row hash covers: a change of columns or server major version re-baselines."""
    text = "|".join(
        [FINGERPRINT_VERSION, str(server_major)] + [f"{c.name}:{c.pg_type}" for c in table.columns]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- arrow helpers ------------------------------------------------------------------------------


def _rows_schema(table: Table) -> pa.Schema:
    return pa.schema(
        [
            ("key", pa.int64()),
            (WATERMARK_COLUMN, table.arrow_schema.field(WATERMARK_COLUMN).type),
            ("key_hash", pa.int32()),
            ("row_hash", pa.int32()),
        ]
    )


def _empty_rows(table: Table) -> pa.Table:
    return _rows_schema(table).empty_table()


def _pages(rows: pa.Table) -> pa.Array:
    keys = rows.column("key")
    return pc.shift_right(
        keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys, PAGE_BITS
    )


def _concat(a: pa.Table | None, b: pa.Table) -> pa.Table:
    if a is None:
        return b
    return pa.concat_tables([a, b.cast(a.schema)]).sort_by("key")


def _summarise(rows: pa.Table) -> pa.Table:
    """Per range: rows, key-hash sum, row-hash sum (sums as int64, like Postgres's sum(int4))."""
    if not rows.num_rows:
        return pa.table(
            {
                "page": pa.array([], pa.int64()),
                "rows": pa.array([], pa.int64()),
                "key_hash": pa.array([], pa.int64()),
                "content_hash": pa.array([], pa.int64()),
            }
        )
    keyed = pa.table(
        {
            "page": _pages(rows),
            "key_hash": pc.cast(rows.column("key_hash"), pa.int64()),
            "row_hash": pc.cast(rows.column("row_hash"), pa.int64()),
        }
    )
    grouped = keyed.group_by("page").aggregate(
        [("page", "count"), ("key_hash", "sum"), ("row_hash", "sum")]
    )
    return pa.table(
        {
            "page": grouped.column("page"),
            "rows": grouped.column("page_count"),
            "key_hash": grouped.column("key_hash_sum"),
            "content_hash": grouped.column("row_hash_sum"),
        }
    ).sort_by("page")


def _summaries(index: pa.Table) -> dict[int, tuple[int, int, int | None]]:
    return {
        r["page"]: (r["rows"], r["key_hash"], r["content_hash"])
        for r in index.select(["page", "rows", "key_hash", "content_hash"]).to_pylist()
    }


def _window(pages: list[int], seq: int, windows: int) -> tuple[int, int] | None:
    """This run's slice of the ranges: the (seq % windows)-th of `windows` equal slices."""
    if not pages:
        return None
    slot = seq % windows
    chosen = pages[slot * len(pages) // windows : (slot + 1) * len(pages) // windows]
    return (chosen[0], chosen[-1]) if chosen else None


def _span(pages: set[int]) -> tuple[int, int] | None:
    return (min(pages), max(pages)) if pages else None


def _deleted(before: pa.Table | None, current: pa.Table | None) -> pa.Table:
    """Keys in the state's rows of the drilled ranges that are not there now."""
    if before is None or not before.num_rows:
        return pa.table(
            {"key": pa.array([], pa.int64()), WATERMARK_COLUMN: pa.array([], pa.timestamp("ms"))}
        )
    now = current.column("key") if current is not None else pa.array([], pa.int64())
    gone = before.filter(pc.invert(pc.is_in(before.column("key"), value_set=_flat(now))))
    return gone.select(["key", WATERMARK_COLUMN])


def _changed_keys(before: pa.Table | None, current: pa.Table, shipped: pa.Array) -> list[int]:
    """Keys whose row is new to the state or hashes differently, and the stream did not ship."""
    if before is not None and before.num_rows:
        old = pa.table({"key": before.column("key"), "old_hash": before.column("row_hash")})
        joined = current.select(["key", "row_hash"]).join(old, "key", join_type="left outer")
        changed = joined.filter(
            pc.or_kleene(
                pc.is_null(joined.column("old_hash")),
                pc.not_equal(joined.column("row_hash"), joined.column("old_hash")),
            )
        )
    else:
        changed = current.select(["key", "row_hash"])
    keys = changed.column("key")
    if len(shipped):
        keys = keys.filter(pc.invert(pc.is_in(keys, value_set=shipped)))
    return sorted(int(k) for k in _flat(keys).to_pylist())


def _kept_index(plan: _Plan) -> pa.Table:
    """The previous index without the drilled ranges (their rows are re-read)."""
    if plan.previous_index is None or plan.baseline:
        return INDEX_SCHEMA.empty_table()
    drilled = pa.array(sorted(plan.drilled), pa.int64())
    index = plan.previous_index
    return index.filter(pc.invert(pc.is_in(index.column("page"), value_set=drilled)))


def _new_index_rows(plan: _Plan) -> int:
    kept = _kept_index(plan)
    current = plan.current.num_rows if plan.current is not None else 0
    return int(pc.sum(kept.column("rows")).as_py() or 0) + current


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def batches_keys(
    batches: Iterator[pa.RecordBatch], key: str, sink: list[pa.Array], lock: threading.Lock
) -> Iterator[pa.RecordBatch]:
    """Pass `batches` through, remembering the keys they ship (the ranges to drill after)."""
    for batch in batches:
        with lock:
            sink.append(batch.column(key))
        yield batch
