"""Where each run's extract window ends (`high`) and the next one starts (`low`).

Rows are extracted when `low <= last_updated < high`, all tables from one REPEATABLE READ
snapshot. `high` must be a time before which every row not yet visible to that snapshot can
not be stamped: it is the millisecond floor of the earliest of
  - the time the horizon is read (before the snapshot is taken), and
  - the start of the oldest transaction open on the database at that moment,
minus a small margin. Any row our snapshot cannot see belongs to a transaction that was open
when the horizon was read (so it started at or after the oldest start) or started later;
writers stamp `last_updated` from the database clock at or after their start, so the row has
`last_updated >= high` and the next run (low = this high, inclusive) extracts it.

`low` comes from the newest committed manifest the loader did not skip (`base_manifest`), and
is never trusted blindly (`check_base`): a high ahead of the database clock, or below its own
low, stops the run before anything is written. See ingest/README.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from runtime import lake
from runtime.lake import Manifest, TableEntry

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?$")


@dataclass(frozen=True)
class Horizon:
    high: str  # "YYYY-MM-DD HH:MM:SS.mmm", UTC wall-clock like last_updated
    method: str  # "oldest_transaction" or "safety_lag"
    lag_s: float  # how far `high` trails the database clock
    now: str = ""  # the database clock when the horizon was read, same format


def read_horizon(conn: Any, *, safety_lag_s: float, margin_s: float) -> Horizon:
    """Read `high`; call in autocommit, just before `begin_snapshot` on the same connection."""
    [[oldest, now, can_see]] = conn.run(_HORIZON_SQL)
    if can_see:
        method = "oldest_transaction"
        high = min(now, oldest or now) - timedelta(seconds=margin_s)
    else:
        # Without pg_read_all_stats other users' xact_start reads as NULL: fall back to a lag
        # long enough that no writer's transaction stays open longer.
        method = "safety_lag"
        high = now - timedelta(seconds=safety_lag_s)
    high = high.replace(microsecond=high.microsecond // 1000 * 1000)
    return Horizon(format_ts(high), method, round((now - high).total_seconds(), 3), format_ts(now))


class WatermarkRefused(RuntimeError):
    """A committed watermark the extract will not start from; the message says what to do."""


def base_manifest(s3: Any, bucket: str, latest: int | None, skipped: set[int]) -> Manifest | None:
    """The manifest whose highs (and carries) the next run starts from: the newest committed
    one not skipped, unless a skip its extract had not seen (above its `skipped_through`)
    needs re-covering; then the newest not-skipped one below the oldest such skip, so that
    skipped window is extracted again. Versions loaded in between may ship twice: raw keeps
    them, dbt keeps the first delivery of each (key, last_updated). None: start from nothing."""
    newest = _newest_not_skipped(s3, bucket, latest, skipped)
    if newest is None:
        return None
    pending = [s for s in skipped if s > (newest.skipped_through or 0)]
    if not pending:
        return newest
    return _newest_not_skipped(s3, bucket, min(pending) - 1, skipped)


def _newest_not_skipped(s3: Any, bucket: str, at: int | None, skipped: set[int]) -> Manifest | None:
    # Seqs are contiguous from 1 (each run commits latest + 1): walking back needs no listing.
    seq = at or 0
    while seq >= 1 and seq in skipped:
        seq -= 1
    return lake.read_manifest(s3, bucket, lake.manifest_key(seq)) if seq >= 1 else None


def check_base(base: Manifest | None, horizon: Horizon, *, tolerance_s: float) -> None:
    """Refuse (WatermarkRefused) a base manifest with a table whose high is ahead of the
    database clock or below its low: starting from it would silently skip rows."""
    if base is None:
        return
    now = parse_ts(horizon.now)
    for entry in base.tables:
        high, low = entry.watermark_high, entry.watermark_low
        if high is None:
            continue
        if low is not None and parse_ts(high) < parse_ts(low):
            raise WatermarkRefused(
                f"refused the watermark of manifest {base.seq} ({base.key}), table"
                f" {entry.table}: its high {high} is before its low {low} (it went backwards)."
                f" {_WHAT_TO_DO.format(seq=base.seq)}"
            )
        ahead = (parse_ts(high) - now).total_seconds()
        if ahead > tolerance_s:
            raise WatermarkRefused(
                f"refused the watermark of manifest {base.seq} ({base.key}), table"
                f" {entry.table}: its high {high} is {ahead:.3f}s ahead of the source"
                f" database's clock ({horizon.now}); rows stamped before it would never be"
                f" extracted. {_WHAT_TO_DO.format(seq=base.seq)}"
            )


_WHAT_TO_DO = (
    "Nothing was committed. If manifest {seq} is not loaded yet, skip it"
    " (`totes load --skip {seq} --reason TEXT`): the next extract starts again from the"
    " manifest before it. If it is loaded, see ingest/README.md (refused watermarks)."
)


def begin_snapshot(conn: Any, snapshot_id: str | None = None) -> None:
    """Open the read-only REPEATABLE READ transaction every table is read in; with
    `snapshot_id` (from `export_snapshot`), share another session's snapshot."""
    conn.run("start transaction isolation level repeatable read read only")
    if snapshot_id is not None:
        if not _SNAPSHOT_ID.match(snapshot_id):
            raise ValueError(f"not a snapshot id: {snapshot_id!r}")
        # SET TRANSACTION SNAPSHOT takes no bind parameters; the id was validated above.
        conn.run(f"set transaction snapshot '{snapshot_id}'")
    # Text output the CSV parser relies on, whatever the role's defaults.
    conn.run(
        "select set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),"
        " set_config('extra_float_digits', '3', true)"
    )


def export_snapshot(conn: Any) -> str:
    [[snapshot_id]] = conn.run("select pg_export_snapshot()")
    return str(snapshot_id)


def table_low(entry: TableEntry | None, *, overlap_s: float) -> str | None:
    """The committed `high` of a table's entry in the base manifest (None: never
    extracted), moved back by `overlap_s` to re-read rows stamped by writers with skewed
    application clocks."""
    high = entry.watermark_high if entry is not None else None
    if high is None:
        return None
    if overlap_s <= 0:
        return high
    return format_ts(parse_ts(high) - timedelta(seconds=overlap_s))


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value if "." in value else value + ".000", TIMESTAMP_FORMAT)


def format_ts(value: datetime) -> str:
    """Millisecond text that keeps `.000` (isoformat() would drop a zero fraction)."""
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"


# now() is this statement's start, before pg_stat_activity is read: a transaction that
# committed between the two cannot be missed. Times are turned into UTC wall-clock.
_HORIZON_SQL = """
select (select min(a.xact_start) from pg_catalog.pg_stat_activity a
         where a.datname = current_database() and a.pid <> pg_backend_pid()
           and a.backend_type = 'client backend' and a.xact_start is not null)
           at time zone 'UTC',
       now() at time zone 'UTC',
       coalesce((select r.rolsuper from pg_catalog.pg_roles r where r.rolname = current_user),
                false)
         or pg_has_role(current_user, 'pg_read_all_stats', 'member')
"""
