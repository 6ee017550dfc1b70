"""Benchmark: the loader's Parquet → Arrow → CSV → COPY path against a raw COPY and awswrangler.

Not collected by pytest. Against a running stack (`eval "$(totes env)"`):

    .venv/bin/python benchmarks/bench_load.py [--rows N] [--runs 3] [--wrangler-rows N]

Makes a sales_order Parquet file (the exact 12-column schema, synthetic values) and the same
rows as CSV, then times each contender in a child process of its own (peak memory is that
child's ru_maxrss), median of `--runs`, on a scratch database and bucket it drops afterwards:

  loader run_load     the whole loader: S3 download + sha256 + checks + COPY + ledger, one tx
  loader copy path    lambda_loader.copyin from a local Parquet file (no S3)
  raw COPY (pg8000)   the CSV file streamed in 1 MB chunks into COPY FROM STDIN
  raw COPY (psql)     psql \\copy of the CSV file
  awswrangler to_sql  awswrangler.postgresql.to_sql, chunksize 1000, on a subset (see below)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

TARGET = "bench_sales_order"


def make_data(rows: int, folder: Path) -> tuple[Path, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from support.loader_lake import SALES_ORDER

    rng = np.random.default_rng(42)
    ids = np.arange(1, rows + 1, dtype=np.int32)
    base = np.datetime64("2022-11-03T14:20:52.186", "ms")
    created = base + (ids.astype(np.int64) * 60_000 + rng.integers(0, 1000, rows))
    dates = (np.datetime64("2022-11-05") + rng.integers(0, 800, rows)).astype(str)
    values = {
        "sales_order_id": ids,
        "created_at": created,
        "last_updated": created,
        "design_id": rng.integers(1, 471, rows, dtype=np.int32),
        "staff_id": rng.integers(1, 21, rows, dtype=np.int32),
        "counterparty_id": rng.integers(1, 21, rows, dtype=np.int32),
        "units_sold": rng.integers(1001, 99974, rows, dtype=np.int32),
        "unit_price": [Decimal(int(c)).scaleb(-2) for c in rng.integers(200, 401, rows)],
        "currency_id": rng.integers(1, 4, rows, dtype=np.int32),
        "agreed_delivery_date": dates,
        "agreed_payment_date": dates,
        "agreed_delivery_location_id": rng.integers(1, 31, rows, dtype=np.int32),
    }
    schema = pa.schema([pa.field(n, t, nullable=False) for n, _, t, _ in SALES_ORDER])
    table = pa.table({n: pa.array(values[n], t) for n, _, t, _ in SALES_ORDER}, schema=schema)
    parquet, csv = folder / "sales_order.parquet", folder / "sales_order.csv"
    pq.write_table(table, parquet, row_group_size=131_072)
    pacsv.write_csv(table, csv, pacsv.WriteOptions(include_header=False, quoting_style="all_valid"))
    return parquet, csv


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
        lineage = copyin.Lineage(
            1, "bench", "bench/sales_order.parquet", conn.run("SELECT now()")[0][0]
        )
        conn.run("BEGIN")
        rows = copyin.copy_parquet(
            conn,
            cfg["raw_table"],
            pq.ParquetFile(cfg["parquet"]),
            columns,
            lineage,
            manifest_key="bench",
        )
        conn.run("COMMIT")
    elif name == "raw COPY (pg8000)":

        def chunks():
            with open(cfg["csv"], "rb") as f:
                while block := f.read(1 << 20):
                    yield block

        conn.run(f"COPY {TARGET} FROM STDIN WITH (FORMAT csv)", stream=chunks())
        rows = conn.row_count
    elif name == "raw COPY (psql)":
        out = subprocess.run(
            [
                cfg["psql"],
                cfg["dsn"],
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f"\\copy {TARGET} FROM '{cfg['csv']}' WITH (FORMAT csv)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = int(out.stdout.split()[-1])
    elif name == "awswrangler to_sql":
        import awswrangler as wr
        import pyarrow.parquet as pq

        frame = pq.read_table(cfg["parquet"]).slice(0, cfg["wrangler_rows"]).to_pandas()
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
    seconds = time.perf_counter() - start
    # VmHWM, not RUSAGE_SELF's ru_maxrss: Linux carries ru_maxrss over from the forked parent
    # through exec, so every child would report the driver's peak. psql is its own process.
    peak = _vm_hwm_kb()
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"rows": rows, "seconds": seconds, "peak_mb": max(peak, peak_children) / 1024}


def _vm_hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def conn_for_wrangler(dsn: str):
    import pg8000

    from runtime import db

    p = db.parse_dsn(dsn)
    return pg8000.connect(user=p.user, database=p.database, unix_sock=p.unix_socket)


# ---- driver -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_118_700)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wrangler-rows", type=int, default=100_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cfg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(args.cfg))))
        return

    from support.loader_lake import SALES_ORDER

    from infra.local.stack import PG_BIN
    from runtime import db
    from runtime.config import Settings

    settings = Settings.from_env()
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
    try:
        print(f"making {args.rows:,} sales_order rows ...", file=sys.stderr)
        parquet, csv = make_data(args.rows, folder)
        body = parquet.read_bytes()
        columns = [
            {"name": n, "pg_type": pg, "arrow_type": str(t), "nullable": nul}
            for n, pg, t, nul in SALES_ORDER
        ]
        key = "totesys/sales_order/2026/11/25/bench-00000.parquet"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        manifest = {
            "format": "totes-manifest/1",
            "seq": 1,
            "run_id": "bench",
            "created_at": "2026-11-25T22:30:00.000Z",
            "source": "totesys",
            "tables": [
                {
                    "table": "sales_order",
                    "primary_key": ["sales_order_id"],
                    "columns": columns,
                    "watermark": {"low": None, "high": "2026-11-25 22:30:00.000"},
                    "rows": args.rows,
                    "files": [
                        {
                            "key": key,
                            "rows": args.rows,
                            "bytes": len(body),
                            "sha256": hashlib.sha256(body).hexdigest(),
                        }
                    ],
                }
            ],
        }
        s3.put_object(
            Bucket=bucket, Key="_manifests/0000000001.json", Body=json.dumps(manifest).encode()
        )
        print(
            f"parquet {len(body) / 1e6:.1f} MB, csv {csv.stat().st_size / 1e6:.1f} MB",
            file=sys.stderr,
        )
        cfg = {
            "dsn": dsn,
            "bucket": bucket,
            "endpoint": settings.aws_endpoint_url,
            "region": settings.region,
            "parquet": str(parquet),
            "csv": str(csv),
            "columns": columns,
            "raw_table": "sales_order",
            "psql": str(PG_BIN / "psql"),
            "wrangler_rows": args.wrangler_rows,
        }
        conn = db.connect(dsn)
        contenders = [
            "raw COPY (psql)",
            "raw COPY (pg8000)",
            "loader copy path",
            "loader run_load",
            "awswrangler to_sql",
        ]
        table = []
        for name in contenders:
            runs = []
            for _ in range(args.runs):
                reset(conn, name)
                out = subprocess.run(
                    [sys.executable, __file__, "--child", name, "--cfg", json.dumps(cfg)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=os.environ,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"  {name}: {runs[-1]}", file=sys.stderr)
            secs = statistics.median(r["seconds"] for r in runs)
            table.append(
                (
                    name,
                    runs[0]["rows"],
                    secs,
                    runs[0]["rows"] / secs,
                    statistics.median(r["peak_mb"] for r in runs),
                )
            )
        conn.close()
        report(table, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        admin.run(f"DROP DATABASE IF EXISTS {db.quote_ident(dbname)} WITH (FORCE)")
        admin.close()
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


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


def report(table: list, args: argparse.Namespace) -> None:
    raw = min(r[2] / r[1] for r in table if r[0].startswith("raw COPY"))  # seconds per row
    print(f"\nsales_order, {args.rows:,} rows, median of {args.runs} (child process each)\n")
    print(
        f"{'contender':<22}{'rows':>11}{'seconds':>10}{'rows/s':>12}{'peak MB':>10}"
        f"{'vs raw COPY':>13}"
    )
    for name, rows, secs, rate, peak in table:
        ratio = (secs / rows) / raw
        print(f"{name:<22}{rows:>11,}{secs:>10.2f}{rate:>12,.0f}{peak:>10.0f}{ratio:>12.2f}x")
    print(
        f"\nawswrangler ran on the first {args.wrangler_rows:,} rows only; its rows/s and "
        "ratio are per row. Ratio = seconds per row / fastest raw COPY's seconds per row."
    )


if __name__ == "__main__":
    main()
