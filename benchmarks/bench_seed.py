"""Benchmark: seed totesys at a given scale (default 100, about 1.1M sales orders and 1.6M
transactions and payments) into a fresh database on the running local stack, and print how fast
each table was generated and loaded.

    .venv/bin/totes up
    .venv/bin/python benchmarks/bench_seed.py [--scale 100] [--seed 42] [--keep]

Not collected by pytest (only test_*.py are): it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import uuid
from datetime import date
from pathlib import Path

from infra.local.stack import PG_PORT, PG_SUPERUSER, LocalStack
from infra.local.totesys import seed
from runtime import db


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end-date", type=date.fromisoformat, default=date(2024, 11, 1))
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()

    sys.path[:0] = [str(Path(__file__).resolve().parent)]
    from stack_cpu import machine_state

    print(f"{machine_state()} (at the start)")
    sock = LocalStack.from_env().socket_dir
    name = f"totesys_bench_{uuid.uuid4().hex[:8]}"
    admin = db.connect(f"postgresql://{PG_SUPERUSER}@/postgres?host={sock}&port={PG_PORT}")
    admin.run(f"CREATE DATABASE {db.quote_ident(name)}")
    try:
        conn = db.connect(f"postgresql://{PG_SUPERUSER}@/{name}?host={sock}&port={PG_PORT}")
        started = time.perf_counter()
        report = seed(conn, scale=args.scale, seed=args.seed, end=args.end_date)
        wall = time.perf_counter() - started
        conn.close()
    finally:
        if not args.keep:
            admin.run(f"DROP DATABASE IF EXISTS {db.quote_ident(name)} WITH (FORCE)")
        admin.close()

    print(f"seed --scale {args.scale:g} --seed {args.seed} into {name}")
    print(f"{'table':<16}{'rows':>12}{'generate s':>12}{'COPY s':>10}{'COPY rows/s':>14}")
    for t in report.tables:
        rate = t.rows / t.copy_s if t.copy_s else 0
        print(f"{t.table:<16}{t.rows:>12,}{t.generate_s:>12.2f}{t.copy_s:>10.2f}{rate:>14,.0f}")
    rows = sum(t.rows for t in report.tables)
    generate_s = sum(t.generate_s for t in report.tables)
    copy_s = sum(t.copy_s for t in report.tables)
    print(f"{'all':<16}{rows:>12,}{generate_s:>12.2f}{copy_s:>10.2f}{rows / copy_s:>14,.0f}")
    print(f"keys, indexes, foreign keys, sequences: {report.constraints_s:.2f} s")
    print(f"total: {wall:.1f} s ({rows / wall:,.0f} rows/s overall)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak_mb:,.0f} MB")
    print(f"{machine_state()} (at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
