"""Benchmark: `totes verify` on whatever stack the environment points at, per table.

Not collected by pytest.

    TOTES_HOME=.totes/bench .venv/bin/python benchmarks/bench_verify.py [--repeat 3]

Read-only (it plants nothing): run it after `totes seed --scale N` and `totes run`. Prints one
JSON line per run (per-table seconds and rows, and the CPU seconds the local stack's PostgreSQL
and this process spent: a figure that does not depend on how loaded the machine is) and the
medians of the whole checks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time

import psutil

from infra.local.stack import LocalStack
from runtime.config import Settings
from totes.cli import default_to_local_stack
from verify.verify import run_verify


def server_cpu_s(stack: LocalStack) -> float:
    """CPU seconds of the stack's postmaster and every backend and parallel worker it has run
    (a reaped child's time is in the postmaster's children_* times)."""
    pid = int((stack.pgdata / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    total = sum(postmaster.cpu_times()[:4])
    for child in postmaster.children():
        with contextlib.suppress(psutil.NoSuchProcess):  # ended while we looked
            total += sum(child.cpu_times()[:2])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    default_to_local_stack(os.environ)
    settings = Settings.from_env()
    stack = LocalStack.from_env()
    me = psutil.Process()
    wall, cpu = [], []
    for _ in range(args.repeat):
        server, own = server_cpu_s(stack), sum(me.cpu_times()[:2])
        began = time.perf_counter()
        result = run_verify(settings)
        wall.append(time.perf_counter() - began)
        cpu.append(server_cpu_s(stack) - server + sum(me.cpu_times()[:2]) - own)
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "seconds": round(wall[-1], 2),
                    "cpu_seconds": round(cpu[-1], 2),
                    "load_average": round(os.getloadavg()[0], 1),
                    "source_rows": sum(t.source_rows for t in result.tables),
                    "tables": {t.table: [t.source_rows, t.seconds] for t in result.tables},
                }
            )
        )
    print(
        json.dumps(
            {
                "median_seconds": round(statistics.median(wall), 2),
                "median_cpu_seconds": round(statistics.median(cpu), 2),
                "cpus": os.cpu_count(),
                "runs": len(wall),
            }
        )
    )


if __name__ == "__main__":
    main()
