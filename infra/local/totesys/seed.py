"""Fill an empty database with the totesys schema and realistic, deterministic data.

Everything happens in one transaction: drop whatever empty totesys tables exist, create the bare
tables, COPY each table in, then add keys, indexes and foreign keys (checking every foreign key
once, as a join, instead of once per row), and move each sequence past the highest id. A failure
leaves the database as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pg8000.native

from infra.local.totesys.bulk import copy_table
from infra.local.totesys.generate import generate
from infra.local.totesys.schema import (
    PRIMARY_KEYS,
    TOTESYS_TABLES,
    add_constraints,
    create_tables,
    drop_schema,
    foreign_tables,
    tables_with_rows,
)
from runtime.db import quote_ident

# progress(table, rows_done, rows_total): called as each table's rows are generated and sent.
Progress = Callable[[str, int, int], None]


class SeedError(RuntimeError):
    """Seeding was refused: the database holds data that seeding would destroy or mix with."""


@dataclass(frozen=True)
class TableLoad:
    table: str
    rows: int
    generate_s: float
    copy_s: float


@dataclass
class SeedReport:
    scale: float
    seed: int
    end: date
    skipped: bool = False
    tables: list[TableLoad] = field(default_factory=list)
    constraints_s: float = 0.0
    total_s: float = 0.0

    def rows(self, table: str) -> int:
        return next((t.rows for t in self.tables if t.table == table), 0)


def default_end() -> date:
    """Today (UTC): data ends at today's midnight, so a seed is reproducible all day."""
    return datetime.now(UTC).date()


def seed(
    conn: pg8000.native.Connection,
    scale: float = 1.0,
    seed: int = 42,
    progress: Progress | None = None,
    *,
    end: date | None = None,
    force: bool = False,
    if_empty: bool = False,
) -> SeedReport:
    """Create the totesys schema and load `scale` x the late-2024 volume, ending at `end`.

    Refuses (SeedError) a database holding other tables or totesys rows unless `force`, which
    drops and recreates the totesys tables (never anything else). With `if_empty`, a database
    that already holds totesys rows is left alone and the report says `skipped`.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, not {scale}")
    report = SeedReport(scale=scale, seed=seed, end=end or default_end())
    started = time.perf_counter()
    filled = tables_with_rows(conn)
    if filled and if_empty:
        report.skipped = True
        return report
    _refuse_unless_forced(conn, filled, force)

    conn.run("START TRANSACTION")
    try:
        # Index builds and foreign-key checks after the load sort millions of keys: give them
        # memory for this transaction only.
        conn.run("SET LOCAL maintenance_work_mem = '256MB'")
        drop_schema(conn)
        create_tables(conn)
        report.tables = _load(conn, scale, seed, report.end, progress)
        constraints_started = time.perf_counter()
        add_constraints(conn)
        _advance_sequences(conn)
        report.constraints_s = time.perf_counter() - constraints_started
        conn.run("COMMIT")
    except BaseException:
        conn.run("ROLLBACK")
        raise
    for table in TOTESYS_TABLES:  # fresh statistics, so the first queries plan well
        conn.run(f"ANALYZE {quote_ident(table)}")
    report.total_s = time.perf_counter() - started
    return report


def _refuse_unless_forced(conn: pg8000.native.Connection, filled: list[str], force: bool) -> None:
    if force:
        return
    others = foreign_tables(conn)
    if others:
        shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        raise SeedError(
            f"this database holds tables that are not totesys's ({shown}); "
            "seed a database of its own, or use --force (force=True) to seed beside them"
        )
    if filled:
        raise SeedError(
            f"totesys already holds data ({', '.join(filled)}); use --force (force=True) to drop "
            "and reseed it, or --if-empty (if_empty=True) to keep it"
        )


def _load(
    conn: pg8000.native.Connection,
    scale: float,
    seed: int,
    end: date,
    progress: Progress | None,
) -> list[TableLoad]:
    loads = []
    tables = generate(scale, seed, end)
    while True:
        began = time.perf_counter()
        try:
            name, data = next(tables)
        except StopIteration:
            return loads
        generated = time.perf_counter()
        total = data.num_rows
        if progress:
            progress(name, 0, total)
        on_rows = (lambda done, n=name, t=total: progress(n, done, t)) if progress else None
        rows = copy_table(conn, name, data, on_rows)
        loads.append(TableLoad(name, rows, generated - began, time.perf_counter() - generated))


def _advance_sequences(conn: pg8000.native.Connection) -> None:
    """Make the next id after the seeded ones what the app's next insert gets."""
    for table, key in PRIMARY_KEYS.items():
        highest_sql = f"SELECT max({quote_ident(key)}) FROM {quote_ident(table)}"  # noqa: S608
        (highest,) = conn.run(highest_sql)[0]
        conn.run(
            "SELECT setval(pg_get_serial_sequence(:table, :key), :value, :called)",
            table=quote_ident(table),
            key=key,
            value=highest or 1,
            called=highest is not None,
        )
