"""Benchmark: the extract (COPY → Arrow → Parquet → S3) against a raw COPY and awswrangler.

Not collected by pytest. Against a running stack (`eval "$(totes env)"`):

    .venv/bin/python tests/benchmarks/bench_extract.py [--scale 100] [--runs 3] [--workers N]

Seeds totesys at `--scale` when sales_order is absent or empty, then times each contender on
every sales_order row, each run in a child process of its own (peak memory is that child's
ru_maxrss from wait4; the server's memory is not counted for anyone), median of `--runs`:

  extract          ingest.extract.extract_table: the extract's whole table path, to a scratch
                   bucket (no manifest), including the child's Python start-up and imports
  extract, per-row the same with server_chunks=False: plain COPY csv, one pg8000 message a row
  raw COPY (psql)  psql \\copy (select * from sales_order) to /dev/null
  awswrangler      awswrangler.postgresql.read_sql_query over a pg8000 connection
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

TABLE = "sales_order"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="extract key-range streams")
    parser.add_argument("--skip-wrangler", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args.child, args.workers)

    from totes.config import Settings

    settings = Settings.from_env()
    rows = ensure_seeded(settings, args.scale)
    bucket = f"bench-extract-{uuid.uuid4().hex[:8]}"
    s3 = settings.client("s3")
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": settings.region}
    )
    env = {**os.environ, "INGESTION_BUCKET": bucket}
    psql = shutil.which("psql") or str(_pg_bin() / "psql")
    contenders = {
        "extract": [sys.executable, __file__, "--child", "extract"]
        + (["--workers", str(args.workers)] if args.workers else []),
        "extract, per-row": [sys.executable, __file__, "--child", "extract-per-row"]
        + (["--workers", str(args.workers)] if args.workers else []),
        "raw COPY (psql)": [
            psql, "-X", "-q", settings.totesys_dsn or "",
            "-c", f"\\copy (select * from {TABLE}) to /dev/null",
        ],
        "awswrangler": [sys.executable, __file__, "--child", "awswrangler"],
    }  # fmt: skip
    if args.skip_wrangler:
        del contenders["awswrangler"]
    print(f"{TABLE}: {rows:,} rows; median of {args.runs} runs, each a fresh child process")
    results = {}
    for name, command in contenders.items():
        runs = [timed(command, env) for _ in range(args.runs)]
        results[name] = (
            statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs),
        )
        print(f"  {name:<16} runs: " + ", ".join(f"{s:.2f} s" for s, _ in runs), flush=True)
    raw = results["raw COPY (psql)"][0]
    print()
    print(f"{'contender':<18}{'seconds':>9}{'rows/s':>12}{'peak MB':>9}{'x raw COPY':>12}")
    for name, (seconds, peak) in results.items():
        print(
            f"{name:<18}{seconds:>9.2f}{rows / seconds:>12,.0f}{peak:>9.0f}{seconds / raw:>12.2f}"
        )
    _empty_bucket(s3, bucket)
    return 0


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{command[:3]} failed with exit code {child.returncode}")
    return seconds, usage.ru_maxrss / 1024


def run_child(which: str, workers: int | None) -> int:
    from totes.config import Settings

    settings = Settings.from_env()
    if which.startswith("extract"):
        from ingest.extract import ExtractOptions, extract_table

        options = ExtractOptions(
            workers=ExtractOptions().workers if workers is None else workers,
            server_chunks=which == "extract",
        )
        result = extract_table(settings, TABLE, options=options)
        print(result, file=sys.stderr)
    else:
        import awswrangler as wr
        import pg8000

        from totes.db import parse_dsn

        params = parse_dsn(settings.totesys_dsn or "")
        con = pg8000.connect(
            user=params.user, database=params.database, unix_sock=params.unix_socket,
            host=None if params.unix_socket else params.host, password=params.password,
        )  # fmt: skip
        frame = wr.postgresql.read_sql_query(f"select * from {TABLE}", con=con)
        print(len(frame), file=sys.stderr)
    return 0


def ensure_seeded(settings, scale: float) -> int:
    from totes import db

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
