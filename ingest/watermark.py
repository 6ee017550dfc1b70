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
See ingest/README.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from runtime.lake import TableEntry

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?$")


@dataclass(frozen=True)
class Horizon:
    high: str  # "YYYY-MM-DD HH:MM:SS.mmm", UTC wall-clock like last_updated
    method: str  # "oldest_transaction" or "safety_lag"
    lag_s: float  # how far `high` trails the database clock


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
    return Horizon(format_ts(high), method, round((now - high).total_seconds(), 3))


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
    """The committed `high` of a table's entry in the latest manifest (None: never
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
