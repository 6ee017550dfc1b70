"""`totes seed` and `totes simulate`: the command-line edge of the totesys stand-in."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

from infra.local.totesys.seed import SeedError, SeedReport, seed
from infra.local.totesys.simulate import SimulationError, simulate
from runtime import db


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "seed", help="create the totesys schema and fill it with realistic, deterministic data"
    )
    _dsn_option(parser)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="volume; 1 = the real database in late 2024"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (same seed, same rows)")
    parser.add_argument(
        "--end-date",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="data ends at this date's midnight UTC (default: today)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="seed even over existing totesys data (dropped) or beside other tables (kept)",
    )
    parser.add_argument(
        "--if-empty", action="store_true", help="do nothing when totesys already holds data"
    )
    parser.set_defaults(func=cmd_seed)

    parser = subparsers.add_parser(
        "simulate", help="write a burst of business activity (new orders, updates) to totesys"
    )
    _dsn_option(parser)
    counts = (
        ("--orders", 20, "new sales orders, each with its transaction and payment"),
        ("--purchases", 8, "new purchase orders, each with its transaction and payment"),
        ("--updates", 5, "sales orders amended (units sold or unit price; unpaid payment follows)"),
        ("--payments-paid", 5, "unpaid payments flipped to paid"),
        ("--address-moves", 1, "counterparties whose legal address is edited"),
        ("--department-renames", 1, "departments renamed"),
        ("--new-designs", 1, "new designs"),
    )
    for flag, default, text in counts:
        parser.add_argument(flag, type=_count, default=default, metavar="N", help=text)
    parser.add_argument("--seed", type=int, default=None, help="random seed for the choices")
    parser.set_defaults(func=cmd_simulate)


def cmd_seed(args: argparse.Namespace) -> int:
    def run() -> int:
        with _connection(args) as conn:
            report = seed(
                conn,
                scale=args.scale,
                seed=args.seed,
                progress=_progress(),
                end=args.end_date,
                force=args.force,
                if_empty=args.if_empty,
            )
        _print_seed(report)
        return 0

    return _guard("seed", run)


def cmd_simulate(args: argparse.Namespace) -> int:
    def run() -> int:
        with _connection(args) as conn:
            result = simulate(
                conn,
                orders=args.orders,
                purchases=args.purchases,
                updates=args.updates,
                payments_paid=args.payments_paid,
                address_moves=args.address_moves,
                department_renames=args.department_renames,
                new_designs=args.new_designs,
                seed=args.seed,
            )
        for line in result.describe():
            print(line)
        return 0

    return _guard("simulate", run)


# ---- helpers ---------------------------------------------------------------------------------


def _dsn_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        default=None,
        help="postgresql:// URI of the database to write (default: $TOTESYS_DSN)",
    )


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


@contextmanager
def _connection(args: argparse.Namespace) -> Iterator[db.pg8000.native.Connection]:
    """Connect to --dsn or $TOTESYS_DSN (read here, at the edge); closes on exit."""
    dsn = args.dsn or os.environ.get("TOTESYS_DSN")
    if not dsn:
        raise db.ConnectionConfigError(
            'no database: pass --dsn, or set TOTESYS_DSN (eval "$(totes env)")'
        )
    conn = db.connect(dsn, application_name="totes-seed")
    try:
        yield conn
    finally:
        conn.close()


def _guard(command: str, run: Callable[[], int]) -> int:
    """Expected failures become one clear line on stderr and exit status 1."""
    try:
        return run()
    except (
        db.DatabaseUnavailableError,
        db.ConnectionConfigError,
        SeedError,
        SimulationError,
        ValueError,
    ) as err:
        print(f"totes {command}: {err}", file=sys.stderr)
        return 1


def _progress() -> Callable[[str, int, int], None]:
    """One line per table on stderr as each finishes (a log-friendly progress display)."""
    started = time.perf_counter()
    finished: set[str] = set()

    def show(table: str, done: int, total: int) -> None:
        if done == total and table not in finished:
            finished.add(table)
            elapsed = time.perf_counter() - started
            print(f"  {table:<15} {total:>12,} rows  {elapsed:7.1f} s", file=sys.stderr)

    return show


def _print_seed(report: SeedReport) -> None:
    if report.skipped:
        print("totesys already holds data: left as it is (--if-empty)", file=sys.stderr)
        return
    rows = sum(t.rows for t in report.tables)
    print(
        f"seeded totesys: {rows:,} rows (scale {report.scale:g}, seed {report.seed}, "
        f"up to {report.end.isoformat()}) in {report.total_s:.1f} s",
        file=sys.stderr,
    )
