"""Benchmark: does a run cost more in an old lake? The extract and the load with 10 committed
manifests in the bucket, then with 100,000 (about a year of 5-minute cycles).

Not collected by pytest. Against a running stack (`eval "$(totes env)"`):

    .venv/bin/python benchmarks/bench_manifest_age.py [--ages 10,100000] [--runs 3]

For each age it builds a lake and a warehouse of that age and times one incremental run of
each step, median of `--runs`:
  - a small totesys of its own (`--scale`, default 0.05) in a database of the stack's
    PostgreSQL, and a warehouse database per age;
  - a moto S3 server of its own on 127.0.0.1 (the stack's server snapshots every bucket to
    disk every few seconds, which 100,000 objects would make the benchmark's cost);
  - the first run is a real extract and load; manifests 2..N are committed through
    `runtime.lake.commit_manifest`, as the extract commits a run with no change (so whatever
    that writes beside the manifest, the milestones, is written too; all but the newest list
    no tables, as nothing reads them), and the warehouse's ledger records them loaded, every
    table of each, as the loader would have;
  - then each timed run: `totes simulate`-style activity (a few orders), `run_extract`, then
    `run_load`, in this process. Besides seconds, it counts the S3 requests each step made
    (ListObjectsV2 calls and the keys they returned): the figures that must not grow.

Prints one row per age and step. Everything it created is dropped at the end.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from infra.local.stack import PG_PORT, PG_SUPERUSER, LocalStack  # noqa: E402
from runtime import db, lake, logs  # noqa: E402
from runtime.config import Settings  # noqa: E402


@dataclass
class Requests:
    """S3 requests made through the clients a `CountingSettings` hands out."""

    calls: collections.Counter[str]
    listed_keys: int = 0

    def reset(self) -> None:
        self.calls.clear()
        self.listed_keys = 0


class CountingSettings(Settings):
    """The pipeline's own Settings, whose S3 clients count what they ask for."""

    requests: Requests

    def client(self, service: str) -> Any:
        client = super().client(service)
        if service == "s3":
            counter = self.requests

            def count(model: Any, **_: Any) -> None:
                counter.calls[model.name] += 1

            def listed(parsed: dict[str, Any], model: Any, **_: Any) -> None:
                if model.name == "ListObjectsV2":
                    counter.listed_keys += len(parsed.get("Contents", ()))

            client.meta.events.register("before-call.s3", count)
            client.meta.events.register("after-call.s3", listed)
        return client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ages", default="10,100000", help="committed manifests, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.05, help="the benchmark's own totesys")
    args = parser.parse_args()
    logs.configure(level=logging.WARNING)  # the steps' INFO lines would drown the table
    ages = [int(a) for a in args.ages.split(",")]

    stack = LocalStack.from_env()
    admin_dsn = f"postgresql://{PG_SUPERUSER}@/postgres?host={stack.socket_dir}&port={PG_PORT}"
    tag = uuid.uuid4().hex[:8]
    source_db = f"bench_age_src_{tag}"
    admin = db.connect(admin_dsn)
    moto = _start_moto()
    created: list[str] = []
    try:
        admin.run(f"create database {db.quote_ident(source_db)}")
        created.append(source_db)
        source_dsn = _dsn(stack, source_db)
        _seed(source_dsn, args.scale)
        results: list[tuple[int, str, float, collections.Counter[str], int, float]] = []
        for age in ages:
            warehouse_db = f"bench_age_wh_{tag}_{age}"
            admin.run(f"create database {db.quote_ident(warehouse_db)}")
            created.append(warehouse_db)
            settings = _settings(moto.endpoint, source_dsn, _dsn(stack, warehouse_db), age, tag)
            built_s = _build_lake(settings, moto, age)
            for step, seconds, calls, keys in _timed_runs(settings, source_dsn, args.runs):
                results.append((age, step, seconds, calls, keys, built_s))
            print(f"  age {age:,}: lake built in {built_s:.1f} s", file=sys.stderr, flush=True)
        _print(results, args.runs)
    finally:
        moto.stop()
        for name in reversed(created):
            admin.run(f"drop database if exists {db.quote_ident(name)} with (force)")
        admin.close()
    return 0


# ---- the lake and the warehouse of a given age -------------------------------------------------


def _build_lake(settings: CountingSettings, moto: _Moto, age: int) -> float:
    """A real first extract and load, then manifests 2..age as quiet runs, loaded."""
    from ingest.extract import run_extract
    from lambda_loader.load import run_load

    started = time.perf_counter()
    s3 = settings.client("s3")
    s3.create_bucket(
        Bucket=settings.ingestion_bucket,
        CreateBucketConfiguration={"LocationConstraint": settings.region},
    )
    first = run_extract(settings, cloudwatch=_NoMetrics())
    assert first.committed and first.seq == 1
    run_load(settings)
    base = lake.read_manifest(s3, settings.ingestion_bucket, lake.manifest_key(1))
    # A run with no change: every table's high stays, nothing is shipped, the carry is kept.
    quiet = [replace(t, watermark_low=t.watermark_high, rows=0, files=()) for t in base.tables]

    if age >= 2:
        moto.populate(settings.ingestion_bucket, lake.new_manifest(2, "bench", quiet), 2, age)
    _record_loaded(settings, base, age)
    return time.perf_counter() - started


def _record_loaded(settings: CountingSettings, base: lake.Manifest, age: int) -> None:
    """The ledger rows the loader writes for manifests 2..age (rows = 0, every table)."""
    if age < 2:
        return
    conn = settings.warehouse_connection()
    try:
        conn.run(
            "insert into raw._manifest_ledger (manifest_key, seq, run_id, rows, loaded_at, status)"
            " select '_manifests/' || lpad(s::text, 10, '0') || '.json', s,"
            " 'bench-' || lpad(s::text, 10, '0'), 0, now(), 'loaded'"
            " from generate_series(2, :age) as s",
            age=age,
        )
        conn.run(
            "insert into raw._manifest_tables"
            " (seq, table_name, rows, watermark_low, watermark_high, loaded_at)"
            " select s, t.table_name, 0, t.watermark_high, t.watermark_high, now()"
            " from generate_series(2, :age) as s,"
            " (select table_name, watermark_high from raw._manifest_tables where seq = 1) as t",
            age=age,
        )
        conn.run("analyze raw._manifest_ledger")
        conn.run("analyze raw._manifest_tables")
    finally:
        conn.close()


def _timed_runs(
    settings: CountingSettings, source_dsn: str, runs: int
) -> list[tuple[str, float, collections.Counter[str], int]]:
    from infra.local.totesys.simulate import simulate
    from ingest.extract import run_extract
    from lambda_loader.load import run_load

    timings: dict[str, list[tuple[float, collections.Counter[str], int]]] = {
        "extract": [],
        "load": [],
    }
    for run in range(runs):
        conn = db.connect(source_dsn)
        try:
            simulate(conn, orders=3, purchases=1, updates=1, payments_paid=1, seed=run)
        finally:
            conn.close()
        time.sleep(1.5)  # past the extract's 1 s margin, so the change ships in this run
        for step, call in (
            ("extract", lambda: run_extract(settings, cloudwatch=_NoMetrics())),
            ("load", lambda: run_load(settings)),
        ):
            settings.requests.reset()
            started = time.perf_counter()
            result = call()
            seconds = time.perf_counter() - started
            if step == "extract" and not result.committed:
                raise RuntimeError("the timed extract lost its seq")
            timings[step].append(
                (
                    seconds,
                    collections.Counter(settings.requests.calls),
                    settings.requests.listed_keys,
                )
            )
    out = []
    for step, measured in timings.items():
        middle = sorted(measured, key=lambda m: m[0])[len(measured) // 2]
        out.append((step, statistics.median(m[0] for m in measured), middle[1], middle[2]))
    return out


def _print(
    results: list[tuple[int, str, float, collections.Counter[str], int, float]], runs: int
) -> None:
    print(f"manifest age: one incremental run per step, median of {runs}, in this process")
    print(
        f"{'manifests':>10}  {'step':<8}{'seconds':>9}{'S3 lists':>10}"
        f"{'keys listed':>13}{'S3 requests':>13}"
    )
    for age, step, seconds, calls, keys, _ in results:
        print(
            f"{age:>10,}  {step:<8}{seconds:>9.3f}{calls.get('ListObjectsV2', 0):>10}"
            f"{keys:>13,}{sum(calls.values()):>13}"
        )


# ---- plumbing ----------------------------------------------------------------------------------


class _NoMetrics:
    """The extract publishes metrics to CloudWatch; not measured here."""

    def put_metric_data(self, **_: Any) -> None:
        return None


def _seed(dsn: str, scale: float) -> None:
    from infra.local.totesys.seed import seed

    conn = db.connect(dsn, timeout=None)
    try:
        seed(conn, scale=scale, seed=42)
    finally:
        conn.close()


def _dsn(stack: LocalStack, database: str) -> str:
    return f"postgresql://{PG_SUPERUSER}@/{database}?host={stack.socket_dir}&port={PG_PORT}"


def _settings(
    endpoint: str, source_dsn: str, warehouse_dsn: str, age: int, tag: str
) -> CountingSettings:
    settings = CountingSettings.from_env(
        {
            **os.environ,
            "TOTESYS_DSN": source_dsn,
            "WAREHOUSE_DSN": warehouse_dsn,
            "AWS_ENDPOINT_URL": endpoint,
            "INGESTION_BUCKET": f"bench-age-{tag}-{age}",
        }
    )
    object.__setattr__(settings, "requests", Requests(collections.Counter()))
    return settings


# The benchmark's S3: moto's server in a child process, which also takes one command on its
# stdin: commit manifests `first..last` (copies of a template) by calling the pipeline's own
# `lake.commit_manifest` on moto's storage directly, not over HTTP (100,000 HTTP puts to moto
# take the better part of an hour on two cores; the listings being measured still go over HTTP).
_MOTO_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[2])
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer
from runtime import lake

server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]


class Storage:
    def put_object(self, Bucket, Key, Body, IfNoneMatch=None, **_):
        if IfNoneMatch == "*" and Key in backend.get_bucket(Bucket).keys:
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        backend.put_object(Bucket, Key, Body)
        return {}


for line in sys.stdin:
    order = json.loads(line)
    template = lake.parse_manifest("", order["template"].encode())
    for seq in range(order["first"], order["last"] + 1):
        # Only the newest is ever read (the next run's base): the older ones list no tables,
        # since json.dumps(indent=1) of eleven tables' columns would take most of an hour.
        tables = list(template.tables) if seq == order["last"] else []
        manifest = lake.new_manifest(seq, f"bench-{seq:010d}", tables)
        assert lake.commit_manifest(Storage(), order["bucket"], manifest), seq
    print("done", flush=True)
"""


@dataclass
class _Moto:
    process: subprocess.Popen
    endpoint: str

    def populate(self, bucket: str, template: lake.Manifest, first: int, last: int) -> None:
        assert self.process.stdin and self.process.stdout
        order = {"bucket": bucket, "template": template.to_json().decode(), "first": first}
        self.process.stdin.write(json.dumps({**order, "last": last}) + "\n")
        self.process.stdin.flush()
        if self.process.stdout.readline().strip() != "done":
            raise RuntimeError("the benchmark's moto server could not commit the manifests")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _start_moto() -> _Moto:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", _MOTO_CHILD, str(port), str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError("the benchmark's moto server did not start")
    return _Moto(process, f"http://127.0.0.1:{port}")


if __name__ == "__main__":
    sys.exit(main())
