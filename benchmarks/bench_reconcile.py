"""Benchmark: what reconciliation (deletes and silent changes, ingest/reconcile.py) adds to a run.

Not collected by pytest. Against a running, seeded stack (`eval "$(totes env)"`) whose
ingestion bucket is empty or already extracted:

    .venv/bin/python benchmarks/bench_reconcile.py [--runs 3] [--deletes 1000]

1. An extract to start from (the first one also baselines every table's state).
2. `--runs` idle extracts: the reconciliation seconds (of which the content window) and the
   lake bytes it wrote, per run; medians printed.
3. `totes simulate --deletes N` (nothing else), one extract: the same figures with N deletes.
Prints one JSON line per run and a summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from infra.local.totesys.simulate import simulate
from ingest.extract import ExtractOptions, run_extract
from runtime import lake
from runtime.config import Settings

QUIET = dict.fromkeys(
    ("orders", "purchases", "updates", "payments_paid", "address_moves",
     "department_renames", "new_designs"), 0,
)  # fmt: skip


def extract(settings: Settings, label: str) -> dict:
    started = time.perf_counter()
    result = run_extract(settings, options=ExtractOptions(margin_s=0.0))
    s3 = settings.client("s3")
    manifest = s3.get_object(Bucket=settings.ingestion_bucket, Key=lake.manifest_key(result.seq))
    line = {
        "run": label,
        "seq": result.seq,
        "extract_s": round(time.perf_counter() - started, 3),
        "reconcile_s": result.reconcile_s,
        "content_check_s": result.content_check_s,
        "lake_bytes": result.reconcile_bytes,
        "manifest_bytes": manifest["ContentLength"],
        "deleted": result.deleted,
        "rows": result.rows,
    }
    print(json.dumps(line), flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deletes", type=int, default=1000)
    args = parser.parse_args()
    settings = Settings.from_env()
    extract(settings, "start")
    idle = [extract(settings, "idle") for _ in range(args.runs)]
    conn = settings.totesys_connection()
    try:
        simulate(conn, seed=7, deletes=args.deletes, **QUIET)
        time.sleep(1.1)  # past the extract's 1 s margin and a statistics flush
    finally:
        conn.close()
    deleting = extract(settings, f"{args.deletes} deletes")
    after = extract(settings, "idle after")
    summary = {
        "idle_reconcile_s": statistics.median(r["reconcile_s"] for r in idle),
        "idle_content_check_s": statistics.median(r["content_check_s"] for r in idle),
        "idle_lake_bytes": statistics.median(r["lake_bytes"] for r in idle),
        "deletes_reconcile_s": deleting["reconcile_s"],
        "deletes_lake_bytes": deleting["lake_bytes"],
        "deleted": deleting["deleted"],
        "idle_after_reconcile_s": after["reconcile_s"],
    }
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
