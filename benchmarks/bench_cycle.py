"""Benchmark: what a whole pipeline cycle costs, at `--scale 1` and `--scale 100`: the first
cycle (everything), a cycle with no change, and an incremental cycle after a default
`totes simulate` (~100 changed rows).

Not collected by pytest. Against a running stack (`eval "$(totes env)"`):

    .venv/bin/python benchmarks/bench_cycle.py [--scales 1,100] [--runs 3] [--keep]

For each scale it seeds a totesys of its own (seed 42) into a new database of the stack's
PostgreSQL, with a new warehouse database and new buckets on the stack's AWS endpoint, then runs
`totes run` as a process of its own, exactly as a person would: once (the first cycle), then
`--runs` times with nothing changed, then `--runs` times each after a `totes simulate` with
its defaults. It prints the cycle's own step table (the JSON `step succeeded` lines: extract,
load, dbt, publish), the cycle's time inside the process and the wall time of `totes run`
(Python's start-up and imports included), medians of the runs. Everything it created is
dropped at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from infra.local.stack import PG_PORT, PG_SUPERUSER, LocalStack  # noqa: E402
from runtime import db  # noqa: E402

STEPS = ("extract", "load", "dbt", "publish")
TOTES = Path(sys.executable).with_name("totes")


@dataclass
class Cycle:
    """One `totes run`: seconds per step, the cycle's own duration, the process's wall time."""

    steps: dict[str, float]
    counts: dict[str, dict[str, Any]]
    cycle_s: float
    wall_s: float


@dataclass
class Row:
    scale: float
    kind: str
    cycles: list[Cycle] = field(default_factory=list)

    def median(self, pick) -> float:
        return statistics.median(pick(c) for c in self.cycles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,100")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the databases and buckets")
    args = parser.parse_args()

    stack = LocalStack.from_env()
    base_env = stack.env()
    admin = db.connect(_dsn(stack, "postgres"))
    s3 = _s3(base_env)
    rows: list[Row] = []
    try:
        for scale in [float(s) for s in args.scales.split(",")]:
            rows += _one_scale(stack, base_env, admin, s3, scale, args.runs, args.keep)
            _print(rows, args.runs)  # after each scale: a long run keeps what it measured
            print(flush=True)
    finally:
        admin.close()
    return 0


def _one_scale(
    stack: LocalStack, base_env: dict[str, str], admin: Any, s3: Any, scale: float, runs: int,
    keep: bool,
) -> list[Row]:  # fmt: skip
    tag = f"{uuid.uuid4().hex[:6]}_{str(scale).replace('.', '_')}"
    source, warehouse = f"bench_cycle_src_{tag}", f"bench_cycle_wh_{tag}"
    buckets = {
        "INGESTION_BUCKET": f"bench-cycle-in-{tag.replace('_', '-')}",
        "PROCESSED_BUCKET": f"bench-cycle-out-{tag.replace('_', '-')}",
    }
    home = Path(tempfile.mkdtemp(prefix=f"bench-cycle-{tag}-"))
    for name in (source, warehouse):
        admin.run(f"create database {db.quote_ident(name)}")
    for bucket in buckets.values():
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": base_env["AWS_REGION"]}
        )
    env = {
        **os.environ,
        **{k: v for k, v in base_env.items() if k != "PG_BIN"},
        **buckets,
        "TOTES_HOME": str(home),  # dbt's per-run targets (and no local stack state to fill in)
        "TOTESYS_DSN": _dsn(stack, source),
        "WAREHOUSE_DSN": _dsn(stack, warehouse),
        "WAREHOUSE_DB": warehouse,
        "GLUE_DATABASE": f"bench_cycle_{tag}",
    }
    try:
        started = time.perf_counter()
        _totes(env, "seed", "--scale", f"{scale:g}", "--seed", "42")
        print(
            f"scale {scale:g}: seeded in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        first = Row(scale, "first cycle", [_cycle(env)])
        idle = Row(scale, "no change", [_cycle(env) for _ in range(runs)])
        busy = Row(scale, "incremental")
        for _ in range(runs):
            _totes(env, "simulate")
            busy.cycles.append(_cycle(env))
        return [first, idle, busy]
    finally:
        if not keep:
            for name in (source, warehouse):
                admin.run(f"drop database if exists {db.quote_ident(name)} with (force)")
            for bucket in buckets.values():
                _drop_bucket(s3, bucket)


def _cycle(env: dict[str, str]) -> Cycle:
    started = time.perf_counter()
    done = subprocess.run(
        [str(TOTES), "run"], env=env, capture_output=True, text=True, check=False, timeout=3600
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"totes run failed:\n{done.stderr[-3000:]}")
    steps: dict[str, float] = {}
    counts: dict[str, dict[str, Any]] = {}
    cycle_s = 0.0
    for line in done.stdout.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("logger") != "totes.cycle":
            continue
        if event.get("message") == "step succeeded":
            steps[event["step"]] = float(event["duration_s"])
            counts[event["step"]] = {
                k: event.get(k) for k in ("rows", "files", "models", "tests") if event.get(k)
            }
        elif event.get("message") == "cycle succeeded":
            cycle_s = float(event["duration_s"])
    return Cycle(steps, counts, cycle_s, wall)


def _print(rows: list[Row], runs: int) -> None:
    print(f"pipeline cycle (`totes run`): seconds; medians of {runs} runs (first cycle: one)")
    head = "".join(f"{s:>9}" for s in STEPS)
    print(f"{'scale':>6}  {'cycle':<12}{head}{'cycle':>9}{'wall':>8}  what it did")
    for row in rows:
        steps = "".join(f"{row.median(lambda c, s=s: c.steps.get(s, 0.0)):>9.2f}" for s in STEPS)
        last = row.cycles[-1].counts
        did = "; ".join(
            f"{s} " + "/".join(f"{v} {k}" for k, v in last.get(s, {}).items())
            for s in STEPS
            if last.get(s)
        )
        print(
            f"{row.scale:>6g}  {row.kind:<12}{steps}"
            f"{row.median(lambda c: c.cycle_s):>9.2f}{row.median(lambda c: c.wall_s):>8.2f}  {did}"
        )
    by = {(r.scale, r.kind): r for r in rows}
    scales = sorted({r.scale for r in rows})
    if len(scales) > 1:
        small, large = scales[0], scales[-1]
        ratio = by[(large, "incremental")].median(lambda c: c.cycle_s) / by[
            (small, "incremental")
        ].median(lambda c: c.cycle_s)
        print(f"incremental cycle at --scale {large:g} / at --scale {small:g}: {ratio:.2f}x")


def _totes(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [str(TOTES), *args], env=env, capture_output=True, text=True, check=False, timeout=3600
    )
    if done.returncode != 0:
        raise SystemExit(f"totes {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def _dsn(stack: LocalStack, database: str) -> str:
    return f"postgresql://{PG_SUPERUSER}@/{database}?host={stack.socket_dir}&port={PG_PORT}"


def _s3(env: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def _drop_bucket(s3: Any, bucket: str) -> None:
    # The benchmark's own buckets, never the pipeline's: safe to empty and drop.
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=bucket)


if __name__ == "__main__":
    sys.exit(main())
