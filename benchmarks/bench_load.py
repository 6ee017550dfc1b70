"""Benchmark: the loader's Parquet → Arrow → CSV → COPY path against a raw COPY, and its memory
on 10 million rows.

Not collected by pytest. Against a running stack (`eval "$(totes env)"`):

    .venv/bin/python benchmarks/bench_load.py [--rows N] [--runs 3] [--big-rows 10000000]
        [--wrangler] [--wrangler-rows N]

Makes sales_order Parquet files as the extract writes them (the exact 12-column schema,
synthetic values, parts of at most 1,000,000 rows, `ingest.parquet_parts.open_writer`) and the
same rows as one CSV file (in the bytes the loader itself sends: `copyin.CSV_OPTIONS`), then
times each contender in a child process of its own, on a scratch database and bucket it drops
afterwards. The contenders take turns, a round at a time, and a ratio is the median over the
rounds of (contender / psql's raw COPY of the same round), so the machine's drift (other work
on it) moves both sides alike. Peak memory is the child's ru_maxrss, CPU the child's plus what
PostgreSQL and the S3 server spent meanwhile (benchmarks/stack_cpu.py).

  raw COPY (psql)     psql \\copy of the CSV file (its own process: nothing else to count)
  raw COPY (pg8000)   the CSV file streamed in 1 MB chunks into COPY FROM STDIN
  loader copy path    lambda_loader.copyin from the local Parquet files (no S3), one tx
  loader run_load     the whole loader: S3 download + sha256 + checks + COPY + ledger, one tx
  awswrangler to_sql  (--wrangler) awswrangler.postgresql.to_sql, chunksize 1000, on a subset

"in-process" times a contender inside its child after its imports; "whole process" is the
child's wall time, Python start-up and imports included. Then psql's raw COPY and run_load
once each on `--big-rows` rows: the peak memory of a large load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

TARGET = "bench_sales_order"
RAW = "raw COPY (psql)"
ROWS_PER_FILE = 1_000_000  # the extract's part size (ingest.parquet_parts.ROWS_PER_FILE)
CHUNK_ROWS = 131_072


def make_data(rows: int, folder: Path, seed: int = 42) -> tuple[list[tuple[Path, int]], Path]:
    """Parquet parts of at most ROWS_PER_FILE rows, and one CSV file of all the rows; made a
    chunk at a time, so 10 million rows need no more memory than one."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    schema = _schema()
    parts: list[tuple[Path, int]] = []
    csv = folder / "sales_order.csv"
    with pacsv.CSVWriter(csv, schema, write_options=_csv_options()) as csv_writer:
        for file_first in range(0, rows, ROWS_PER_FILE):
            file_rows = min(ROWS_PER_FILE, rows - file_first)
            path = folder / f"sales_order-{len(parts):05d}.parquet"
            writer = _open_writer(path, schema)
            for first in range(file_first, file_first + file_rows, CHUNK_ROWS):
                count = min(CHUNK_ROWS, file_first + file_rows - first)
                batch = _chunk(rng, first, count, schema, np, pa)
                writer.write_batch(batch)
                csv_writer.write_batch(batch)
            writer.close()
            parts.append((path, file_rows))
    return parts, csv


def _chunk(rng, first: int, count: int, schema, np, pa):
    ids = np.arange(first + 1, first + count + 1, dtype=np.int32)
    base = np.datetime64("2022-11-03T14:20:52.186", "ms")
    created = base + (ids.astype(np.int64) * 60_000 + rng.integers(0, 1000, count))
    dates = (np.datetime64("2022-11-05") + rng.integers(0, 800, count)).astype(str)
    cents = np.zeros((count, 2), dtype=np.int64)  # decimal128: little-endian low, high words
    cents[:, 0] = rng.integers(200, 401, count)
    price = pa.Array.from_buffers(pa.decimal128(10, 2), count, [None, pa.py_buffer(cents)])
    values = {
        "sales_order_id": ids,
        "created_at": created,
        "last_updated": created,
        "design_id": rng.integers(1, 471, count, dtype=np.int32),
        "staff_id": rng.integers(1, 21, count, dtype=np.int32),
        "counterparty_id": rng.integers(1, 21, count, dtype=np.int32),
        "units_sold": rng.integers(1001, 99974, count, dtype=np.int32),
        "unit_price": price,
        "currency_id": rng.integers(1, 4, count, dtype=np.int32),
        "agreed_delivery_date": dates,
        "agreed_payment_date": dates,
        "agreed_delivery_location_id": rng.integers(1, 31, count, dtype=np.int32),
    }
    arrays = [
        values[f.name] if isinstance(values[f.name], pa.Array) else pa.array(values[f.name], f.type)
        for f in schema
    ]
    return pa.record_batch(arrays, schema=schema)


def _schema():
    import pyarrow as pa
    from support.loader_lake import SALES_ORDER

    return pa.schema([pa.field(n, t, nullable=nul) for n, _, t, nul in SALES_ORDER])


def _open_writer(path: Path, schema):
    try:
        from ingest.parquet_parts import open_writer
    except ImportError:  # a tree from before open_writer: the extract's options of that time
        import pyarrow.parquet as pq

        return pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=False)
    return open_writer(str(path), schema)


def _csv_options():
    import pyarrow.csv as pacsv

    # The bytes the loader sends (strings quoted, nothing else), in every tree benchmarked.
    return pacsv.WriteOptions(include_header=False, quoting_style="needed")


def target_ddl() -> str:
    from support.loader_lake import SALES_ORDER

    from lambda_loader import rawtypes
    from runtime.pg_types import Column

    cols = [
        f'"{n}" {rawtypes.for_column(Column(n, pg, nul, str(t))).sql}'
        for n, pg, t, nul in SALES_ORDER
    ]
    return f"CREATE TABLE {TARGET} ({', '.join(cols)})"


# ---- contenders, each run in a child process ------------------------------------------------


def child(name: str, cfg: dict) -> dict:
    # What a contender imports is imported before the clock starts, and only what it needs,
    # so its peak memory is its own (awswrangler alone brings pandas: ~100 MB).
    if name.startswith("loader"):
        import lambda_loader.load  # noqa: F401
    if name.startswith("awswrangler"):
        import awswrangler  # noqa: F401
    from runtime import db

    conn = db.connect(cfg["dsn"])
    rows = 0
    start = time.perf_counter()
    if name == "loader run_load":
        from lambda_loader.load import run_load
        from runtime.config import Settings

        settings = Settings(
            ingestion_bucket=cfg["bucket"],
            warehouse_dsn=cfg["dsn"],
            aws_endpoint_url=cfg["endpoint"],
            region=cfg["region"],
        )
        start = time.perf_counter()
        result = run_load(settings)
        rows = sum(result.rows.values())
    elif name == "loader copy path":
        import pyarrow.parquet as pq

        from lambda_loader import copyin
        from runtime.pg_types import Column

        columns = tuple(Column(**c) for c in cfg["columns"])
        conn.run("BEGIN")
        loaded_at = conn.run("SELECT now()")[0][0]
        for number, (path, _) in enumerate(cfg["parts"]):
            lineage = copyin.Lineage(1, "bench", f"bench/sales_order-{number}.parquet", loaded_at)
            rows += copyin.copy_parquet(
                conn, cfg["raw_table"], pq.ParquetFile(path), columns, lineage, manifest_key="b"
            )
        conn.run("COMMIT")
    elif name == "raw COPY (pg8000)":

        def chunks():
            with open(cfg["csv"], "rb") as f:
                while block := f.read(1 << 20):
                    yield block

        conn.run(f"COPY {TARGET} FROM STDIN WITH (FORMAT csv)", stream=chunks())
        rows = conn.row_count
    elif name == "awswrangler to_sql":
        import awswrangler as wr
        import pyarrow.parquet as pq

        path = cfg["parts"][0][0]
        frame = pq.read_table(path).slice(0, cfg["wrangler_rows"]).to_pandas()
        start = time.perf_counter()
        wr.postgresql.to_sql(
            frame,
            conn_for_wrangler(cfg["dsn"]),
            table=TARGET,
            schema="public",
            mode="append",
            chunksize=1000,
            use_column_names=True,
        )
        rows = len(frame)
    return {"rows": rows, "in_process_s": time.perf_counter() - start}


def conn_for_wrangler(dsn: str):
    import pg8000

    from runtime import db

    p = db.parse_dsn(dsn)
    return pg8000.connect(user=p.user, database=p.database, unix_sock=p.unix_socket)


def psql_copy(cfg: dict[str, Any]) -> list[str]:
    return [
        cfg["psql"], "-X", cfg["dsn"], "-v", "ON_ERROR_STOP=1",
        "-c", f"\\copy {TARGET} FROM '{cfg['csv']}' WITH (FORMAT csv)",
    ]  # fmt: skip


# ---- driver -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_118_700)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="0: no large load")
    parser.add_argument("--wrangler", action="store_true", help="awswrangler too")
    parser.add_argument("--wrangler-rows", type=int, default=100_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cfg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(args.cfg))))
        return

    from stack_cpu import StackCpu, machine_state

    from infra.local.stack import PG_BIN, LocalStack
    from runtime import db
    from runtime.config import Settings

    settings = Settings.from_env()
    stack = StackCpu(LocalStack.from_env().home)
    tag = uuid.uuid4().hex[:8]
    base = db.parse_dsn(settings.warehouse_dsn or "")
    admin = db.connect(
        db.ConnectionParams(
            "postgres", base.user, base.password, base.host, base.port, base.sslmode
        )
    )
    dbname = f"bench_load_{tag}"
    admin.run(f"CREATE DATABASE {db.quote_ident(dbname)}")
    dsn = (settings.warehouse_dsn or "").replace(f"/{base.database}?", f"/{dbname}?")
    bucket = f"bench-load-{tag}"
    s3 = settings.client("s3")
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": settings.region}
    )
    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    print(f"{machine_state()} (at the start)")
    try:
        cfg = {
            "dsn": dsn,
            "bucket": bucket,
            "endpoint": settings.aws_endpoint_url,
            "region": settings.region,
            "raw_table": "sales_order",
            "psql": str(PG_BIN / "psql"),
            "wrangler_rows": args.wrangler_rows,
        }
        conn = db.connect(dsn)
        contenders = [RAW, "raw COPY (pg8000)", "loader copy path", "loader run_load"]
        cfg.update(stage(s3, bucket, folder / "main", args.rows))
        runs: dict[str, list[Any]] = {name: [] for name in contenders}
        for round_number in range(1, args.runs + 1):
            for name in contenders:
                runs[name].append(measure(name, cfg, conn, stack))
            line = ", ".join(f"{n} {r[-1][0].seconds:.2f} s" for n, r in runs.items())
            print(f"  round {round_number}: {line}", file=sys.stderr, flush=True)
        if args.wrangler:
            runs["awswrangler to_sql"] = [measure("awswrangler to_sql", cfg, conn, stack)]
        report(runs, args)
        if args.big_rows:
            shutil.rmtree(folder / "main", ignore_errors=True)
            _empty_bucket(s3, bucket)
            cfg.update(stage(s3, bucket, folder / "big", args.big_rows))
            big = {name: [measure(name, cfg, conn, stack)] for name in (RAW, "loader run_load")}
            files = len(cfg["parts"])
            print(f"\nsales_order, {args.big_rows:,} rows in {files} files, one run each\n")
            print_rows(big)
        conn.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        admin.run(f"DROP DATABASE IF EXISTS {db.quote_ident(dbname)} WITH (FORCE)")
        admin.close()
        _empty_bucket(s3, bucket)
        s3.delete_bucket(Bucket=bucket)
    print(f"{machine_state()} (at the end)")


def stage(s3, bucket: str, folder: Path, rows: int) -> dict[str, Any]:
    """Make the data, upload the parts and their manifest; what the contenders need of it."""
    from support.loader_lake import SALES_ORDER

    folder.mkdir(parents=True)
    print(f"making {rows:,} sales_order rows ...", file=sys.stderr, flush=True)
    parts, csv = make_data(rows, folder)
    columns = [
        {"name": n, "pg_type": pg, "arrow_type": str(t), "nullable": nul}
        for n, pg, t, nul in SALES_ORDER
    ]
    files = []
    for number, (path, part_rows) in enumerate(parts):
        key = f"totesys/sales_order/2026/11/25/20261125T223000000000Z-bench-{number:05d}.parquet"
        body = path.read_bytes()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        files.append(
            {
                "key": key,
                "rows": part_rows,
                "bytes": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
        )
    manifest = {
        "format": "totes-manifest/1",
        "seq": 1,
        "run_id": "20261125T223000000000Z-bench",
        "created_at": "2026-11-25T22:30:00.000Z",
        "source": "totesys",
        "tables": [
            {
                "table": "sales_order",
                "primary_key": ["sales_order_id"],
                "columns": columns,
                "watermark": {"low": None, "high": "2026-11-25 22:30:00.000"},
                "rows": rows,
                "files": files,
            }
        ],
    }
    s3.put_object(
        Bucket=bucket, Key="_manifests/0000000001.json", Body=json.dumps(manifest).encode()
    )
    size = sum(f["bytes"] for f in files)
    print(
        f"parquet {size / 1e6:.1f} MB in {len(files)} files, csv {csv.stat().st_size / 1e6:.1f} MB",
        file=sys.stderr,
    )
    return {
        "parts": [(str(p), n) for p, n in parts],
        "csv": str(csv),
        "columns": columns,
        "rows": rows,
    }


def measure(name: str, cfg: dict[str, Any], conn, stack) -> tuple[Any, dict[str, Any]]:
    from stack_cpu import run_measured

    reset(conn, name)
    if name == RAW:
        usage = run_measured(psql_copy(cfg), dict(os.environ), stack)
        inside = {"rows": int(usage.stdout.split()[-1]), "in_process_s": usage.seconds}
    else:
        command = [sys.executable, __file__, "--child", name, "--cfg", json.dumps(cfg)]
        usage = run_measured(command, dict(os.environ), stack)
        inside = json.loads(usage.stdout.strip().splitlines()[-1])
    return usage, inside


def reset(conn, name: str) -> None:
    conn.run("DROP SCHEMA IF EXISTS raw CASCADE")
    conn.run(f"DROP TABLE IF EXISTS {TARGET}")
    conn.run(target_ddl())
    if name == "loader copy path":
        from support.loader_lake import SALES_ORDER

        from lambda_loader import ledger, rawschema
        from runtime.lake import TableEntry
        from runtime.pg_types import Column

        ledger.create_tables(conn)
        entry = TableEntry(
            "sales_order",
            ("sales_order_id",),
            tuple(Column(n, pg, nul, str(t)) for n, pg, t, nul in SALES_ORDER),
            None,
            None,
            0,
            (),
        )
        rawschema.ensure_table(conn, entry, "bench")
    conn.run("CHECKPOINT")


def report(runs: dict[str, list[Any]], args: argparse.Namespace) -> None:
    print(f"\nsales_order, {args.rows:,} rows, {args.runs} rounds (a child process each run)\n")
    print_rows(runs)
    print(
        "\nx raw COPY: median over the rounds of the contender's seconds per row / psql's raw"
        " COPY's in the same round; CPU s: the child's, PostgreSQL's and the S3 server's."
    )
    if "awswrangler to_sql" in runs:
        print(
            f"awswrangler ran once, on the first {args.wrangler_rows:,} rows; its ratio is per row."
        )


def print_rows(runs: dict[str, list[Any]]) -> None:
    raw = runs[RAW]
    print(
        f"{'contender':<34}{'rows':>11}{'seconds':>9}{'rows/s':>11}{'peak MB':>9}"
        f"{'x raw COPY':>12}{'CPU s':>8}{'x raw CPU':>11}"
    )
    raw_s = [u.seconds / i["rows"] for u, i in raw]
    raw_cpu = [u.total_cpu_s / i["rows"] for u, i in raw]
    for name, measured in runs.items():
        rows = measured[0][1]["rows"]
        peak = statistics.median(u.peak_mb for u, _ in measured)
        cpu = [u.total_cpu_s / i["rows"] for u, i in measured]
        timings = {"whole process": [u.seconds for u, _ in measured]}
        if name != RAW:
            timings = {"in-process": [i["in_process_s"] for _, i in measured], **timings}
        for label, seconds in timings.items():
            per_row = [s / i["rows"] for s, (_, i) in zip(seconds, measured, strict=True)]
            shown = name if name == RAW else f"{name}, {label}"
            median = statistics.median(seconds)
            print(
                f"{shown:<34}{rows:>11,}{median:>9.2f}{rows / median:>11,.0f}{peak:>9.0f}"
                f"{_paired(per_row, raw_s):>11.2f}x"
                f"{statistics.median(cpu) * rows:>8.2f}{_paired(cpu, raw_cpu):>10.2f}x"
            )


def _paired(values: list[float], raw: list[float]) -> float:
    if len(values) != len(raw):  # run once: against the raw COPY's median
        return statistics.median(values) / statistics.median(raw)
    return statistics.median(v / r for v, r in zip(values, raw, strict=True))


def _empty_bucket(s3, bucket: str) -> None:
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=obj["Key"])


if __name__ == "__main__":
    main()
