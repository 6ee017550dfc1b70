"""`run_verify`: compare every `totesys` table with what the marts hold of it, in SQL on each side.

No table crosses the wire. For each check (verify.tables) both databases compute, in one
read-only snapshot each (verify.snapshot), a fingerprint per key range: the count of rows and
the XOR of a 64-bit fingerprint (md5) of each row's key and normalised carried values. Key
ranges are `key / width`, with `width` a power of two chosen from the source's largest key so a
table has 2,048 to `BUCKETS` ranges; equal ranges are done with. Differing ranges holding more
than `REFINE_ABOVE` rows are split `SPLIT` ways, again in SQL, until few rows remain; those are
read row by row ((key, md5) on both sides, plus the source's `last_updated`), up to
`DRILL_ROW_LIMIT` rows per table (beyond it the counts are lower bounds, `truncated`), and each
differing key is classified:

- `missing`: in totesys, not in the marts;
- `extra`: in the marts, not in totesys (until delete capture lands, a deleted source row);
- `silent`: in both, different, and the source row has the same `last_updated` as the newest
  version the pipeline shipped (raw) but other values: a change that bypassed `last_updated`,
  which an incremental extract never sees;
- `changed`: in both and different otherwise (the marts hold a value that is not the source's);
- in flight (not drift): the source row changed at or after the marts' horizon
  (verify.horizon), so the next cycle brings it.

The result names, per table, the row counts on both sides, the count of each kind and a few
example keys. Drift in any table makes `ok` false.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from runtime import db, logs
from runtime.config import Settings
from runtime.db import qualified, quote_ident
from verify import tables
from verify.horizon import Horizon, read_horizon
from verify.snapshot import Limits, read_only_snapshot

KINDS = ("missing", "extra", "changed", "silent")
KIND_LABELS = {
    "missing": "missing row",
    "extra": "extra row in warehouse",
    "changed": "changed value",
    "silent": "silent update",
}
BUCKETS = 4096
DRILL_ROW_LIMIT = 200_000
REFINE_ABOVE = 20_000  # rows in differing ranges above which they are split finer first
SPLIT = 64  # each split makes a differing range this many ranges
EXAMPLES = 5
APPLICATION_NAME = "totes-verify"
# Sorting a fact's versions for its `*_current` view in memory rather than on disk.
WAREHOUSE_WORK_MEM = "128MB"  # the facts' versions are sorted for their `*_current` views


@dataclass(frozen=True)
class VerifyOptions:
    tables: tuple[str, ...] | None = None  # source tables to check (default: all)
    examples: int = EXAMPLES
    limits: Limits = field(default_factory=Limits)
    buckets: int = BUCKETS
    drill_row_limit: int = DRILL_ROW_LIMIT
    refine_above: int = REFINE_ABOVE
    # On drift, wait up to this long for a cycle to build the marts past this check's start,
    # then check the drifting tables again and report only what drifted both times (see
    # `settle`). 0: report the first check as it is.
    settle_s: float = 0.0
    settle_poll_s: float = 10.0


@dataclass(frozen=True)
class TableCheck:
    """One source table (with the tables its mart joins in) against its relation in `marts`."""

    table: str  # e.g. "staff + department"
    mart: str
    source_rows: int = 0
    mart_rows: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    examples: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    in_flight: int = 0
    differing_ranges: int = 0
    truncated: bool = False  # more differing rows than DRILL_ROW_LIMIT: counts are at least
    problem: str | None = None  # the check could not be made (a relation is missing)
    seconds: float = 0.0
    # Every differing key by kind (what `settle` intersects; not in as_dict).
    keys: Mapping[str, frozenset[int]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def drift(self) -> int:
        return sum(self.counts.get(k, 0) for k in KINDS)

    @property
    def ok(self) -> bool:
        return self.problem is None and self.drift == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "mart": self.mart,
            "source_rows": self.source_rows,
            "mart_rows": self.mart_rows,
            "ok": self.ok,
            **{k: self.counts.get(k, 0) for k in KINDS},
            "examples": {k: list(v) for k, v in self.examples.items() if v},
            "in_flight": self.in_flight,
            "differing_ranges": self.differing_ranges,
            "truncated": self.truncated,
            "problem": self.problem,
            "seconds": self.seconds,
        }

    def describe(self) -> str:
        """One line naming what differs and example keys, for alerts and logs."""
        if self.problem:
            return f"{self.table}: {self.problem}"
        at_least = "at least " if self.truncated else ""
        parts = [
            f"{at_least}{self.counts[k]} {KIND_LABELS[k]}"
            + (f" (e.g. {self._keys(k)})" if self.examples.get(k) else "")
            for k in KINDS
            if self.counts.get(k)
        ]
        return f"{self.table} vs {self.mart}: " + ("; ".join(parts) or "ok")

    def _keys(self, kind: str) -> str:
        return ", ".join(str(k) for k in self.examples[kind])


@dataclass(frozen=True)
class VerifyResult:
    run_id: str
    started_at: datetime
    finished_at: datetime
    tables: tuple[TableCheck, ...]
    built_seq: int | None = None
    building: bool = False
    source_clock: datetime | None = None  # the source's clock (UTC) at its snapshot
    settled: bool | None = None  # None: not asked; False: no cycle came within settle_s

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def drifting(self) -> tuple[TableCheck, ...]:
        return tuple(t for t in self.tables if not t.ok)

    @property
    def duration_s(self) -> float:
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def describe(self) -> str:
        if self.ok:
            rows = sum(t.source_rows for t in self.tables)
            covered = len({name for t in self.tables for name in t.table.split(" + ")})
            return (
                f"verify {self.run_id}: no drift: {covered} source tables, {rows:,} rows, match "
                f"the marts (in {self.duration_s:.1f}s)"
            )
        return f"verify {self.run_id}: DRIFT: " + " | ".join(t.describe() for t in self.drifting)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "started_at": self.started_at.isoformat(),
            "duration_s": self.duration_s,
            "built_seq": self.built_seq,
            "building": self.building,
            "settled": self.settled,
            "tables": [t.as_dict() for t in self.tables],
        }


def run_verify(
    settings: Settings, *, run_id: str | None = None, options: VerifyOptions | None = None
) -> VerifyResult:
    """Compare totesys with the marts; returns the result (drift does not raise).

    Raises what a connection raises when a database cannot be reached (or a query is refused:
    a timeout, a lock it would have to wait for), and ValueError for a table name no check
    covers.
    """
    options = options or VerifyOptions()
    run_id = run_id or logs.new_run_id()
    log = logs.run_logger("verify", run_id)
    first = verify_once(settings, _chosen(options.tables), options, run_id)
    settling = not first.ok and options.settle_s > 0
    result = settle(settings, first, options) if settling else first
    if result.ok:
        log.info("no drift", built_seq=result.built_seq, duration_s=result.duration_s)
    else:
        log.warning(
            "drift found",
            tables=[t.describe() for t in result.drifting],
            settled=result.settled,
            duration_s=result.duration_s,
        )
    return result


def verify_once(
    settings: Settings, chosen: Sequence[tables.Check], options: VerifyOptions, run_id: str
) -> VerifyResult:
    """One pass: both snapshots, the horizon, every chosen check."""
    log = logs.run_logger("verify", run_id)
    started = datetime.now(UTC)
    log.info("verify started", tables=[c.label for c in chosen])
    with ExitStack() as stack:
        source = stack.enter_context(_connection(settings.totesys_connection, options.limits))
        warehouse = stack.enter_context(_connection(settings.warehouse_connection, options.limits))
        stack.enter_context(read_only_snapshot(source, options.limits))
        stack.enter_context(read_only_snapshot(warehouse, _warehouse_limits(options.limits)))
        # now() is the snapshot's transaction start: every change the check can miss is later.
        [[source_clock]] = source.run("select now() at time zone 'UTC'")
        horizon = read_horizon(warehouse, tables.source_tables())
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify"))
        both = _Both(pool, source, warehouse)
        checks = tuple(_check(both, check, horizon, options) for check in chosen)
    for check in checks:
        log.info(
            "table verified",
            table=check.table,
            mart=check.mart,
            source_rows=check.source_rows,
            mart_rows=check.mart_rows,
            drift=check.drift,
            in_flight=check.in_flight,
            duration_s=check.seconds,
            **({"problem": check.problem} if check.problem else {}),
        )
    return VerifyResult(
        run_id,
        started,
        datetime.now(UTC),
        checks,
        horizon.built_seq,
        horizon.building,
        source_clock,
    )


def settle(settings: Settings, first: VerifyResult, options: VerifyOptions) -> VerifyResult:
    """Check the drifting tables again once a cycle has built the marts past `first`, and keep
    only the keys that drift both times.

    A deletion or a change that bypassed `last_updated` carries no time, so one made just before
    the check looks like drift until the next cycle ships it (delete capture, silent-change
    detection). A cycle has had its chance once every drifting table's horizon
    (verify.horizon) is at or past the source's clock at the first check and no build is under
    way. Within `settle_s` no such cycle (the pipeline is stopped or behind): `first` is the
    answer, `settled` False.
    """
    log = logs.run_logger("verify", first.run_id)
    drifting = [c for c in tables.CHECKS if c.label in {t.table for t in first.drifting}]
    deadline = time.monotonic() + options.settle_s
    while not _built_past(settings, drifting, first.source_clock, options.limits):
        if time.monotonic() + options.settle_poll_s > deadline:
            log.warning("no cycle built the marts in time to settle", settle_s=options.settle_s)
            return replace(first, settled=False)
        time.sleep(options.settle_poll_s)
    second = verify_once(settings, drifting, options, first.run_id)
    again = {t.table: t for t in second.tables}
    merged = tuple(
        _persistent(t, again[t.table], options.examples) if t.table in again else t
        for t in first.tables
    )
    return replace(
        first,
        finished_at=second.finished_at,
        tables=merged,
        built_seq=second.built_seq,
        building=second.building,
        settled=True,
    )


def _built_past(
    settings: Settings,
    checks: Sequence[tables.Check],
    clock: datetime | None,
    limits: Limits,
) -> bool:
    with (
        _connection(settings.warehouse_connection, limits) as warehouse,
        read_only_snapshot(warehouse, limits),
    ):
        horizon = read_horizon(warehouse, tables.source_tables())
    if horizon.building or clock is None:
        return False
    marks = [horizon.of(c.tables) for c in checks]
    return all(mark is not None and mark >= clock for mark in marks)


def _persistent(first: TableCheck, second: TableCheck, examples: int) -> TableCheck:
    """`second`, keeping only the keys that differed in `first` too (of any kind)."""
    if first.problem or second.problem or first.truncated or second.truncated:
        return second  # no full key sets to intersect: the later check stands
    before = frozenset().union(*first.keys.values()) if first.keys else frozenset()
    keys = {k: second.keys.get(k, frozenset()) & before for k in KINDS}
    return replace(
        second,
        counts={k: len(v) for k, v in keys.items()},
        examples={k: tuple(sorted(v)[:examples]) for k, v in keys.items()},
        keys=keys,
    )


def _warehouse_limits(limits: Limits) -> Limits:
    return replace(limits, work_mem=WAREHOUSE_WORK_MEM) if limits.work_mem else limits


def _chosen(names: Sequence[str] | None) -> tuple[tables.Check, ...]:
    if not names:
        return tables.CHECKS
    unknown = set(names) - set(tables.source_tables())
    if unknown:
        raise ValueError(
            f"no check covers {', '.join(sorted(unknown))}; the tables are "
            + ", ".join(tables.source_tables())
        )
    return tuple(c for c in tables.CHECKS if set(c.tables) & set(names))


@contextmanager
def _connection(connect: Callable[..., Any], limits: Limits) -> Iterator[Any]:
    """A connection named `totes-verify` (pg_stat_activity shows who reads), closed on exit."""
    conn = connect(application_name=APPLICATION_NAME, timeout=limits.socket_timeout_s)
    try:
        yield conn
    finally:
        db.close(conn)


@dataclass
class _Both:
    """The two snapshots, queried side by side (the servers work while Python waits)."""

    pool: ThreadPoolExecutor
    source: Any
    warehouse: Any

    def run(self, source: Callable[[Any], Any], warehouse: Callable[[Any], Any]) -> tuple[Any, Any]:
        pending = self.pool.submit(warehouse, self.warehouse)
        from_source = source(self.source)
        return from_source, pending.result()


def _check(
    both: _Both, check: tables.Check, horizon: Horizon, options: VerifyOptions
) -> TableCheck:
    with logs.Timer() as timer:
        found = _compare(both, check, horizon, options)
    return TableCheck(**{**found, "seconds": timer.seconds})


def _compare(
    both: _Both, check: tables.Check, horizon: Horizon, options: VerifyOptions
) -> dict[str, Any]:
    base = {"table": check.label, "mart": check.mart}
    missing_relations = [
        name
        for conn, schema, relation in (
            *((both.source, tables.SOURCE_SCHEMA, t) for t in check.tables),
            (both.warehouse, tables.MARTS_SCHEMA, check.mart),
        )
        if not _exists(conn, schema, relation)
        for name in (f"{schema}.{relation}",)
    ]
    if missing_relations:
        return {**base, "problem": f"{', '.join(missing_relations)} does not exist"}

    [[top]] = both.source.run(
        f"select coalesce(max({quote_ident(check.key)}), 0) "  # noqa: S608 - identifiers quoted
        f"from {qualified(tables.SOURCE_SCHEMA, check.table)}"
    )
    mart_sql = check.mart_rows(
        without_deleted=_exists(both.warehouse, tables.MARTS_SCHEMA, tables.DELETED_MEMBERS)
    )
    # A power of two, so every finer width below divides it and its ranges nest.
    width = 1 << max(0, math.ceil(top / options.buckets) - 1).bit_length()
    source_buckets, mart_buckets = both.run(
        lambda conn: _buckets(conn, check.source_rows(with_stamp=False), width),
        lambda conn: _buckets(conn, mart_sql, width),
    )
    counts = {
        "source_rows": sum(n for n, _ in source_buckets.values()),
        "mart_rows": sum(n for n, _ in mart_buckets.values()),
    }
    differing = _differing(source_buckets, mart_buckets)
    if not differing:
        return {**base, **counts, "counts": dict.fromkeys(KINDS, 0)}
    ranges = len(differing)
    # Many differing rows (drift spread over the table): split only the differing ranges finer,
    # in SQL again, until few rows remain to read one by one.
    while width > 1 and _size(differing, source_buckets, mart_buckets) > options.refine_above:
        finer, within = max(1, width // SPLIT), (width, differing)
        source_buckets, mart_buckets = both.run(
            partial(
                _buckets, rows_sql=check.source_rows(with_stamp=False), width=finer, within=within
            ),
            partial(_buckets, rows_sql=mart_sql, width=finer, within=within),
        )
        width, differing = finer, _differing(source_buckets, mart_buckets)

    drilled, budget = [], options.drill_row_limit
    for bucket in differing:
        size = _size([bucket], source_buckets, mart_buckets)
        if drilled and size > budget:
            break
        drilled.append(bucket)
        budget -= size
    source_rows, mart_rows = both.run(
        lambda conn: _rows(conn, check.source_rows(with_stamp=True), width, drilled),
        lambda conn: _rows(conn, mart_sql, width, drilled),
    )
    kinds, in_flight = _classify(both, check, horizon.of(check.tables), source_rows, mart_rows)
    return {
        **base,
        **counts,
        "counts": {k: len(kinds[k]) for k in KINDS},
        "examples": {k: tuple(sorted(kinds[k])[: options.examples]) for k in KINDS},
        "keys": {k: frozenset(kinds[k]) for k in KINDS},
        "in_flight": in_flight,
        "differing_ranges": ranges,
        "truncated": len(drilled) < len(differing),
    }


def _buckets(
    conn: Any, rows_sql: str, width: int, within: tuple[int, list[int]] | None = None
) -> dict[int, tuple[int, int]]:
    """Per key range of `width`: the row count and the XOR of the rows' 64-bit fingerprints
    (the first half of each md5; one parse per row, half the cost of two 32-bit sums). With
    `within` (a coarser width, its ranges): only the rows in those ranges."""
    where, params = "", {"width": width}
    if within is not None:
        where = "where f.k / cast(:within as bigint) = any(cast(:ranges as bigint[])) "
        params.update(within=within[0], ranges=within[1])
    found = conn.run(
        "select f.k / cast(:width as bigint) as b, count(*), "  # noqa: S608 - built from quoted identifiers
        "bit_xor(('x' || left(f.h, 16))::bit(64)::bigint) "
        f"from ({rows_sql}) as f {where}group by 1",
        **params,
    )
    return {int(b): (int(n), int(x)) for b, n, x in found}


def _differing(
    source: Mapping[int, tuple[int, int]], mart: Mapping[int, tuple[int, int]]
) -> list[int]:
    return sorted(b for b in source.keys() | mart.keys() if source.get(b) != mart.get(b))


def _size(
    ranges: Iterable[int],
    source: Mapping[int, tuple[int, int]],
    mart: Mapping[int, tuple[int, int]],
) -> int:
    """Rows in `ranges`, both sides together: what reading them one by one would fetch."""
    return sum(source.get(b, (0, 0))[0] + mart.get(b, (0, 0))[0] for b in ranges)


def _rows(conn: Any, rows_sql: str, width: int, buckets: list[int]) -> dict[int, tuple]:
    found = conn.run(
        f"select f.* from ({rows_sql}) as f "  # noqa: S608 - built from quoted identifiers
        "where f.k / cast(:width as bigint) = any(cast(:buckets as bigint[]))",
        width=width,
        buckets=buckets,
    )
    return {int(row[0]): tuple(row[1:]) for row in found}


def _classify(
    both: _Both,
    check: tables.Check,
    horizon: datetime | None,
    source_rows: Mapping[int, tuple],
    mart_rows: Mapping[int, tuple],
) -> tuple[dict[str, set[int]], int]:
    kinds: dict[str, set[int]] = {k: set() for k in KINDS}
    in_flight = 0

    def flying(key: int) -> bool:
        stamp = source_rows[key][1]
        return horizon is not None and stamp is not None and stamp >= horizon

    different: list[int] = []
    for key in source_rows.keys() | mart_rows.keys():
        if key not in mart_rows:
            if flying(key):
                in_flight += 1
            else:
                kinds["missing"].add(key)
        elif key not in source_rows:
            kinds["extra"].add(key)
        elif source_rows[key][0] != mart_rows[key][0]:
            if flying(key):
                in_flight += 1
            else:
                different.append(key)
    silent = _silent(both, check, different) if different else set()
    kinds["silent"] = silent
    kinds["changed"] = set(different) - silent
    return kinds, in_flight


def _silent(both: _Both, check: tables.Check, keys: list[int]) -> set[int]:
    """Those of `keys` whose row (or a joined row) changed in the source without its
    `last_updated` moving: raw's newest version has the same stamp and other values."""
    found = _silent_in(both, check.table, keys)
    for join in check.joins:
        links = both.source.run(
            f"select {quote_ident(check.key)}, {quote_ident(join.on)} "  # noqa: S608 - identifiers quoted
            f"from {qualified(tables.SOURCE_SCHEMA, check.table)} "
            f"where {quote_ident(check.key)} = any(cast(:keys as bigint[]))",
            keys=keys,
        )
        joined_silent = _silent_in(
            both, join.table, sorted({fk for _, fk in links if fk is not None})
        )
        found |= {key for key, fk in links if fk in joined_silent}
    return found


def _silent_in(both: _Both, table: str, keys: Iterable[int]) -> set[int]:
    keys = list(keys)
    if not keys or not _exists(both.warehouse, tables.RAW_SCHEMA, table):
        return set()
    source, shipped = both.run(
        lambda conn: conn.run(
            tables.own_version_rows(table, tables.SOURCE_SCHEMA, latest=False), keys=keys
        ),
        lambda conn: conn.run(
            tables.own_version_rows(table, tables.RAW_SCHEMA, latest=True), keys=keys
        ),
    )
    last = {k: (stamp, h) for k, stamp, h in shipped}
    return {k for k, stamp, h in source if k in last and last[k][0] == stamp and last[k][1] != h}


def _exists(conn: Any, schema: str, name: str) -> bool:
    [[found]] = conn.run("select to_regclass(:name) is not null", name=qualified(schema, name))
    return bool(found)
