"""`totes extract`: one extract run against the configured source and bucket."""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="extract changed totesys rows to the ingestion bucket",
        description="Extract every table's rows changed since its committed watermark to "
        "Parquet in the ingestion bucket and commit the run with a manifest.",
    )
    parser.set_defaults(func=cmd_extract)


def cmd_extract(args: argparse.Namespace) -> int:
    from ingest.extract import ExtractOptions, run_extract
    from runtime.config import Settings

    try:
        result = run_extract(Settings.from_env(), options=ExtractOptions.from_env(os.environ))
    except Exception as err:  # already logged as an ERROR line by run_extract
        print(f"totes extract: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    state = "committed" if result.committed else "NOT committed (another run won this seq)"
    print(f"extract run {result.run_id}: manifest {result.seq} {state}", file=sys.stderr)
    print(f"  {'table':<16} {'rows':>10} {'files':>6} {'bytes':>12}  watermark", file=sys.stderr)
    for t in result.tables:
        print(
            f"  {t.table:<16} {t.rows:>10,} {t.files:>6} {t.bytes:>12,}  {t.low} → {t.high}",
            file=sys.stderr,
        )
    print(f"  {result.rows:,} rows in {result.duration_s:.1f} s", file=sys.stderr)
    return 0
