"""Benchmark: the extract (COPY → Arrow → Parquet → S3) against a raw COPY, and its memory on
10 million rows.

Not collected by pytest. Against a running stack (`eval "$(totes env)"`):

    .venv/bin/python benchmarks/bench_extract.py [--scale 100] [--runs 3] [--workers N]
        [--big-rows 10000000] [--wrangler] [--pg8000]

Seeds totesys at `--scale` when sales_order is absent or empty, then times each contender on
every sales_order row, each run in a child process of its own. The contenders take turns:
round 1 runs each once, then round 2, and so on, and a ratio is the median over the rounds of
(contender / raw COPY of the same round), so a machine whose speed drifts from minute to
minute (other work on it) moves both sides of each ratio alike. Peak memory is the child's
ru_maxrss, read by a small launcher process (a child forked straight from this one would
inherit this process's RSS high-water mark); the server's memory is not counted for anyone.
CPU is the child's own plus what PostgreSQL and the S3 server spent meanwhile
(benchmarks/stack_cpu.py).

  extract           ingest.extract.extract_table: the extract's whole table path, to a scratch
                    bucket (no manifest), as a whole process: Python start-up and imports
                    included; "in-process" is the same call timed inside the child, after the
                    imports (a cold Lambda's invocation once its init phase has run)
  extract, warm     the second of two calls in one child (a warm Lambda's invocation)
  raw COPY (psql)   psql \\copy (select * from sales_order) to /dev/null
  pg8000 stream=    (--pg8000) pg8000's own COPY path, run(copy …, stream=<discard>)
  awswrangler       (--wrangler) read_sql_query over a pg8000 connection, one run

Then the extract and the raw COPY once each on a table of `--big-rows` rows (sales_order
repeated, in a schema `bench` of its own that the pipeline never reads; made once and kept):
the peak memory of a large table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

TABLE = "sales_order"
BIG_SCHEMA = "bench"
BIG_TABLE = "sales_order_big"
RAW = "raw COPY (psql)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="extract key-range streams")
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="0: no large table")
    parser.add_argument("--wrangler", action="store_true", help="awswrangler too (one run)")
    parser.add_argument("--pg8000", action="store_true", help="pg8000's own COPY path too")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--table", default=TABLE, help=argparse.SUPPRESS)
    parser.add_argument("--schema", default="public", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args.child, args.workers, args.schema, args.table)

    from stack_cpu import StackCpu, machine_state, run_measured

    from infra.local.stack import LocalStack
    from runtime.config import Settings

    settings = Settings.from_env()
    stack = StackCpu(LocalStack.from_env().home)
    rows = ensure_seeded(settings, args.scale)
    bucket = f"bench-extract-{uuid.uuid4().hex[:8]}"
    s3 = settings.client("s3")
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": settings.region}
    )
    env = {**os.environ, "INGESTION_BUCKET": bucket}
    child = [sys.executable, __file__, "--child"]
    workers = ["--workers", str(args.workers)] if args.workers else []
    extract = [*child, "extract", *workers]
    contenders = {
        "extract": extract,
        "extract, warm": [*child, "extract-warm", *workers],
        RAW: raw_copy_command(settings, "public", TABLE),
    }
    if args.pg8000:
        contenders["pg8000 stream="] = [*child, "pg8000-stream"]
    print(f"{machine_state()} (at the start)")
    print(f"{TABLE}: {rows:,} rows; {args.runs} rounds, each contender once a round, each run")
    print("a fresh child process; x raw COPY = median over rounds of seconds / the raw COPY's")
    runs: dict[str, list[Any]] = {name: [] for name in contenders}
    for round_number in range(1, args.runs + 1):
        for name, command in contenders.items():
            runs[name].append(run_measured(command, env, stack))
        line = ", ".join(f"{n} {r[-1].seconds:.2f} s" for n, r in runs.items())
        print(f"  round {round_number}: {line}", flush=True)
    if args.wrangler:
        runs["awswrangler (one run)"] = [run_measured([*child, "awswrangler"], env, stack)]
    print_table(rows, runs)
    if args.big_rows:
        print_big_table(settings, env, stack, extract, args.big_rows)
    print(f"{machine_state()} (at the end)")
    _empty_bucket(s3, bucket)
    return 0


def print_table(rows: int, runs: dict[str, list[Any]]) -> None:
    raw = runs[RAW]
    raw_s = [r.seconds for r in raw]
    raw_cpu = [r.total_cpu_s for r in raw]
    print()
    print(
        f"{'contender':<26}{'seconds':>9}{'rows/s':>11}{'peak MB':>9}{'x raw COPY':>12}"
        f"{'CPU s':>8}{'x raw CPU':>11}"
    )

    def line(name: str, seconds: list[float], cpu: list[float] | None, peak: float) -> None:
        median = statistics.median(seconds)
        ratio = _paired(seconds, raw_s)
        cpu_text = f"{statistics.median(cpu):>8.2f}{_paired(cpu, raw_cpu):>11.2f}" if cpu else ""
        print(
            f"{name:<26}{median:>9.2f}{rows / median:>11,.0f}{peak:>9.0f}{ratio:>12.2f}{cpu_text}"
        )

    for name, measured in runs.items():
        peak = statistics.median(r.peak_mb for r in measured)
        inside = [json.loads(r.stdout) for r in measured] if name.startswith("extract") else []
        if name == "extract, warm":  # only the second call counts: the child's time holds two
            line(name, [i["warm_s"] for i in inside], None, peak)
            continue
        line(name, [r.seconds for r in measured], [r.total_cpu_s for r in measured], peak)
        if name == "extract":
            line("extract, in-process", [i["in_process_s"] for i in inside], None, peak)
    print(
        "CPU s: the child's, PostgreSQL's and the S3 server's together; of the raw COPY, psql's"
        " and the server's."
    )
    for name in ("extract", RAW):
        measured = runs[name]
        parts = [
            statistics.median(getattr(r, field) for r in measured)
            for field in ("cpu_s", "postgres_cpu_s", "s3_cpu_s")
        ]
        print(
            f"  {name}: client {parts[0]:.2f} s, PostgreSQL {parts[1]:.2f} s,"
            f" S3 server {parts[2]:.2f} s (medians)"
        )


def _paired(seconds: list[float], raw: list[float]) -> float:
    if len(seconds) != len(raw):  # a contender run once: against the raw COPY's median
        return statistics.median(seconds) / statistics.median(raw)
    return statistics.median(s / r for s, r in zip(seconds, raw, strict=True))


def print_big_table(settings, env: dict[str, str], stack, extract: list[str], rows: int) -> None:
    """The extract and the raw COPY once each on a table of about `rows` rows."""
    from stack_cpu import run_measured

    made = ensure_big_table(settings, rows)
    raw = run_measured(raw_copy_command(settings, BIG_SCHEMA, BIG_TABLE), env, stack)
    run = run_measured([*extract, "--schema", BIG_SCHEMA, "--table", BIG_TABLE], env, stack)
    print()
    print(f"{BIG_SCHEMA}.{BIG_TABLE}: {made:,} rows (sales_order repeated), one run each")
    print(
        f"{'contender':<26}{'seconds':>9}{'rows/s':>11}{'peak MB':>9}{'x raw COPY':>12}{'CPU s':>8}"
    )
    for name, usage in (("extract", run), (RAW, raw)):
        print(
            f"{name:<26}{usage.seconds:>9.2f}{made / usage.seconds:>11,.0f}{usage.peak_mb:>9.0f}"
            f"{usage.seconds / raw.seconds:>12.2f}{usage.total_cpu_s:>8.2f}"
        )
    halves = json.loads(run.stdout).get("rss_halves")
    if halves:
        print(
            f"extract: peak RSS {halves[0]:.0f} MB in the first half of the run,"
            f" {halves[1]:.0f} MB in the second"
        )


def ensure_big_table(settings, rows: int) -> int:
    """bench.sales_order_big: sales_order's rows repeated under new keys up to about `rows`,
    with its primary key (so the extract splits it into key ranges). Kept between runs."""
    from runtime import db

    conn = db.connect(settings.totesys_dsn or "", timeout=None)
    try:
        table = f"{db.quote_ident(BIG_SCHEMA)}.{db.quote_ident(BIG_TABLE)}"
        source_rows, top = conn.run("select count(*), max(sales_order_id) from sales_order")[0]
        copies = max(1, round(rows / source_rows))
        if conn.run("select to_regclass(:t) is not null", t=f"{BIG_SCHEMA}.{BIG_TABLE}")[0][0]:
            have = conn.run(f"select count(*) from {table}")[0][0]
            if have == copies * source_rows:
                return int(have)
        print(f"making {table}: {copies} copies of sales_order …", file=sys.stderr, flush=True)
        conn.run(f"create schema if not exists {db.quote_ident(BIG_SCHEMA)}")
        conn.run(f"drop table if exists {table}")
        conn.run(
            f"create table {table} as select s.sales_order_id + (c.n * {int(top)})"
            " as sales_order_id, s.created_at, s.last_updated, s.design_id, s.staff_id,"
            " s.counterparty_id, s.units_sold, s.unit_price, s.currency_id,"
            " s.agreed_delivery_date, s.agreed_payment_date, s.agreed_delivery_location_id"
            f" from generate_series(0, {copies - 1}) as c(n), sales_order s order by 1"
        )
        conn.run(f"alter table {table} add primary key (sales_order_id)")
        conn.run(f"vacuum analyze {table}")
        return copies * int(source_rows)
    finally:
        conn.close()


def raw_copy_command(settings, schema: str, table: str) -> list[str]:
    from runtime import db

    psql = shutil.which("psql") or str(_pg_bin() / "psql")
    name = f"{db.quote_ident(schema)}.{db.quote_ident(table)}"
    return [
        psql, "-X", "-q", settings.totesys_dsn or "",
        "-c", f"\\copy (select * from {name}) to /dev/null",
    ]  # fmt: skip


def run_child(which: str, workers: int | None, schema: str, table: str) -> int:
    from runtime.config import Settings

    settings = Settings.from_env()
    started = time.perf_counter()
    if which in ("extract", "extract-warm"):
        import boto3  # noqa: F401 - before the clock starts, as in a Lambda's init phase

        from ingest.extract import ExtractOptions, extract_table

        defaults = ExtractOptions()
        options = ExtractOptions(
            workers=defaults.workers if workers is None else workers, schema=schema
        )
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
