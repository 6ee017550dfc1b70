"""Benchmark: the extract (COPY → Arrow → Parquet → S3) against a raw COPY and awswrangler.

Not collected by pytest. Against a running stack (`eval "$(totes env)"`):

    .venv/bin/python benchmarks/bench_extract.py [--scale 100] [--runs 3] [--workers N]

Seeds totesys at `--scale` when sales_order is absent or empty, then times each contender on
every sales_order row, each run in a child process of its own, median of `--runs`. Peak
memory is that child's ru_maxrss, read by a small launcher process (a child forked straight
from this one would inherit this process's RSS high-water mark); the server's memory is not
counted for anyone.

  extract           ingest.extract.extract_table: the extract's whole table path, to a scratch
                    bucket (no manifest), including the child's Python start-up and imports;
                    "in-process" is the same call timed inside the child, after the imports
                    (a cold Lambda's invocation once its init phase has run)
  extract, warm     the second of two calls in one child (a warm Lambda's invocation)
  raw COPY (psql)   psql \\copy (select * from sales_order) to /dev/null
  pg8000 stream=    pg8000's own COPY path, run(copy …, stream=<discard>): no parsing at all
  awswrangler       awswrangler.postgresql.read_sql_query over a pg8000 connection
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

TABLE = "sales_order"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="extract key-range streams")
    parser.add_argument("--skip-wrangler", action="store_true")
    parser.add_argument("--skip-sizes", action="store_true", help="no memory-by-table-size runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--table", default=TABLE, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args.child, args.workers, args.table)

    from runtime.config import Settings

    settings = Settings.from_env()
    rows = ensure_seeded(settings, args.scale)
    bucket = f"bench-extract-{uuid.uuid4().hex[:8]}"
    s3 = settings.client("s3")
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": settings.region}
    )
    env = {**os.environ, "INGESTION_BUCKET": bucket}
    psql = shutil.which("psql") or str(_pg_bin() / "psql")
    child = [sys.executable, __file__, "--child"]
    extract = [*child, "extract"] + (["--workers", str(args.workers)] if args.workers else [])
    contenders = {
        "extract": extract,
        "extract, warm": [*extract[:3], "extract-warm", *extract[4:]],
        "raw COPY (psql)": [
            psql, "-X", "-q", settings.totesys_dsn or "",
            "-c", f"\\copy (select * from {TABLE}) to /dev/null",
        ],
        "pg8000 stream=": [*child, "pg8000-stream"],
        "awswrangler": [*child, "awswrangler"],
    }  # fmt: skip
    if args.skip_wrangler:
        del contenders["awswrangler"]
    print(f"{TABLE}: {rows:,} rows; median of {args.runs} runs, each a fresh child process")
    results: dict[str, tuple[float, float]] = {}
    rss_halves: dict[str, tuple[float, float]] = {}
    for name, command in contenders.items():
        runs = [timed(command, env) for _ in range(args.runs)]
        results[name] = (
            statistics.median(r.seconds for r in runs),
            statistics.median(r.peak_mb for r in runs),
        )
        print(f"  {name:<16} runs: " + ", ".join(f"{r.seconds:.2f} s" for r in runs), flush=True)
        inside = [r.in_process_s for r in runs if r.in_process_s is not None]
        if inside:
            results[f"{name}, in-process"] = (statistics.median(inside), results[name][1])
        warm = [r.warm_s for r in runs if r.warm_s is not None]
        if warm:  # only the second call counts: this child's whole time holds two
            results[name] = (statistics.median(warm), results[name][1])
            del results[f"{name}, in-process"]
        halves = [r.rss_halves for r in runs if r.rss_halves]
        if halves:
            rss_halves[name] = halves[len(halves) // 2]
    raw = results["raw COPY (psql)"][0]
    print()
    print(f"{'contender':<22}{'seconds':>9}{'rows/s':>12}{'peak MB':>9}{'x raw COPY':>12}")
    for name, (seconds, peak) in results.items():
        print(
            f"{name:<22}{seconds:>9.2f}{rows / seconds:>12,.0f}{peak:>9.0f}{seconds / raw:>12.2f}"
        )
    for name, (first, second) in rss_halves.items():
        print(
            f"{name}: peak RSS {first:.0f} MB in the first half of the run,"
            f" {second:.0f} MB in the second"
        )
    if not args.skip_sizes:
        print_memory_by_size(settings, env, extract)
    _empty_bucket(s3, bucket)
    return 0


def print_memory_by_size(settings, env: dict[str, str], extract: list[str]) -> None:
    """Peak memory of the extract on half, all and twice sales_order's rows: copies of the
    table made in the benchmark's own totesys (dropped afterwards)."""
    sizes = {"bench_half": "sales_order_id % 2 = 0", "bench_double": None}
    _make_size_tables(settings, sizes)
    try:
        print()
        print(f"{'table':<14}{'rows':>12}{'seconds':>9}{'peak MB':>9}  (extract, one run each)")
        for table in ("bench_half", TABLE, "bench_double"):
            run = timed([*extract, "--table", table], env)
            rows = _count(settings, table)
            print(f"{table:<14}{rows:>12,}{run.seconds:>9.2f}{run.peak_mb:>9.0f}")
    finally:
        _make_size_tables(settings, {name: "drop" for name in sizes})


def _make_size_tables(settings, sizes: dict[str, str | None]) -> None:
    from runtime import db

    conn = db.connect(settings.totesys_dsn or "", timeout=None)
    try:
        for name, how in sizes.items():
            table = db.quote_ident(name)
            conn.run(f"drop table if exists {table}")
            if how == "drop":
                continue
            if how is None:  # twice the rows: every row again under a new key
                conn.run(
                    f"create table {table} as select * from sales_order union all"
                    " select sales_order_id + (select max(sales_order_id) from sales_order),"
                    " created_at, last_updated, design_id, staff_id, counterparty_id, units_sold,"
                    " unit_price, currency_id, agreed_delivery_date, agreed_payment_date,"
                    " agreed_delivery_location_id from sales_order"
                )
            else:
                conn.run(f"create table {table} as select * from sales_order where {how}")
            conn.run(f"alter table {table} add primary key (sales_order_id)")
    finally:
        conn.close()


def _count(settings, table: str) -> int:
    from runtime import db

    conn = db.connect(settings.totesys_dsn or "", timeout=None)
    try:
        return int(conn.run(f"select count(*) from {db.quote_ident(table)}")[0][0])
    finally:
        conn.close()


# Runs one command and reports its wall time and peak RSS. A small process of its own, so the
# measured child inherits this launcher's few MB of high-water mark, not the benchmark's.
_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
out = child.stdout.read()
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"seconds": time.perf_counter() - started, "peak_mb": usage.ru_maxrss / 1024,
                  "code": os.waitstatus_to_exitcode(status), "stdout": out.decode()}))
"""


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float
    in_process_s: float | None  # the child's own timing of its work, when it reports one
    warm_s: float | None  # the same work again in the same process
    rss_halves: tuple[float, float] | None  # peak RSS (MB) in each half of the child's work


def timed(command: list[str], env: dict[str, str]) -> Run:
    """Wall seconds and peak RSS (MB) of one child process."""
    report = json.loads(
        subprocess.run(
            [sys.executable, "-c", _LAUNCHER, *command],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    if report["code"] != 0:
        raise SystemExit(f"{command[:3]} failed with exit code {report['code']}")
    inside = json.loads(report["stdout"]) if report["stdout"].startswith("{") else {}
    halves = inside.get("rss_halves")
    return Run(
        report["seconds"],
        report["peak_mb"],
        inside.get("in_process_s"),
        inside.get("warm_s"),
        tuple(halves) if halves else None,
    )


def run_child(which: str, workers: int | None, table: str) -> int:
    from runtime.config import Settings

    settings = Settings.from_env()
    started = time.perf_counter()
    if which in ("extract", "extract-warm"):
        import boto3  # noqa: F401 - imported before the clock starts, as in a warm Lambda

        from ingest.extract import ExtractOptions, extract_table

        options = ExtractOptions(workers=ExtractOptions().workers if workers is None else workers)
        report: dict[str, Any] = {}
        # The first call is a cold Lambda's after its imports; the second a warm Lambda's
        # (the same process invoked again: allocator, connections' code paths, S3 endpoint
        # rules already warmed). Peak memory covers both.
        for label in ("in_process_s", "warm_s") if which == "extract-warm" else ("in_process_s",):
            sampler = _RssSampler()
            started = time.perf_counter()
            print(extract_table(settings, table, options=options), file=sys.stderr)
            report[label] = time.perf_counter() - started
            report.setdefault("rss_halves", sampler.halves())
        print(json.dumps(report))
        return 0
    elif which == "pg8000-stream":
        from runtime import db

        conn = db.connect(settings.totesys_dsn or "", timeout=None)
        conn.run(f"copy (select * from {TABLE}) to stdout", stream=_Discard())
        conn.close()
    else:
        import awswrangler as wr
        import pg8000

        from runtime.db import parse_dsn

        params = parse_dsn(settings.totesys_dsn or "")
        con = pg8000.connect(
            user=params.user, database=params.database, unix_sock=params.unix_socket,
            host=None if params.unix_socket else params.host, password=params.password,
        )  # fmt: skip
        frame = wr.postgresql.read_sql_query(f"select * from {TABLE}", con=con)
        print(len(frame), file=sys.stderr)
    print(json.dumps({"in_process_s": time.perf_counter() - started}))
    return 0


class _RssSampler:
    """Samples this process's resident set every 20 ms from /proc (Linux)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with open("/proc/self/status") as status:
                kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            self.samples.append((time.perf_counter(), kb / 1024))

    def halves(self) -> tuple[float, float] | None:
        self._stop.set()
        self._thread.join()
        if len(self.samples) < 4:
            return None
        middle = (self.samples[0][0] + self.samples[-1][0]) / 2
        first = max(mb for at, mb in self.samples if at <= middle)
        second = max(mb for at, mb in self.samples if at > middle)
        return first, second


class _Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        return len(data)


def ensure_seeded(settings, scale: float) -> int:
    from runtime import db

    conn = db.connect(settings.totesys_dsn or "", timeout=None)
    try:
        present = conn.run("select to_regclass(:t) is not null", t=TABLE)[0][0]
        rows = conn.run(f"select count(*) from {db.quote_ident(TABLE)}")[0][0] if present else 0
        if not rows:
            from infra.local.totesys.seed import seed

            print(f"seeding totesys at scale {scale} …", file=sys.stderr)
            seed(conn, scale=scale, seed=42, if_empty=True)
            rows = conn.run(f"select count(*) from {db.quote_ident(TABLE)}")[0][0]
        return int(rows)
    finally:
        conn.close()


def _pg_bin() -> Path:
    from infra.local.stack import PG_BIN

    return PG_BIN


def _empty_bucket(s3, bucket: str) -> None:
    # A scratch bucket of this benchmark only, never the pipeline's: safe to empty and drop.
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    s3.delete_bucket(Bucket=bucket)


if __name__ == "__main__":
    sys.exit(main())
