"""`totes report`: the business dashboard from the marts (HTML report + PNG charts + CSV data).

The questions and charts live in `dashboard.ipynb` (open it in Jupyter to explore); the
analyses' SQL lives in the dbt project's `analyses/`. See `build.py` for the steps and output
layout, and docs/ANALYSTS.md for querying the marts by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.config import Settings

DEFAULT_OUT = Path("reports")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNAVAILABLE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report",
        help="the business dashboard from the marts: HTML report + PNG charts",
        description="Runs the dbt analyses against the warehouse (WAREHOUSE_DSN) in the "
        "dashboard notebook and writes report.html, charts/*.png and data/*.csv.",
    )
    report.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: $TOTES_REPORT_DIR, else reports/ in the current folder)",
    )
    report.add_argument(
        "--sql-dir",
        type=Path,
        default=None,
        help="already compiled analyses (<name>.sql); default: compile dbt_warehouse/analyses now",
    )
    report.add_argument(
        "--dbt-compile",
        action="store_true",
        help="compile the analyses with `dbt compile` even when they use nothing but ref()",
    )
    report.add_argument(
        "--timeout", type=int, default=300, help="seconds allowed per notebook cell (300)"
    )
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from totes.report.build import ReportError, WarehouseUnavailable, build_report

    out = args.out or Path(os.environ.get("TOTES_REPORT_DIR") or DEFAULT_OUT)
    try:
        result = build_report(_settings(), out, sql_dir=args.sql_dir, timeout_s=args.timeout)
    except WarehouseUnavailable as err:
        print(f"totes report: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ReportError as err:
        print(f"totes report: {err}", file=sys.stderr)
        return EXIT_FAILED

    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.status != "ok":
        print(f"warning: {result.summary.get('message')}", file=sys.stderr)
    print(f"report: {result.html}")
    print(f"notebook: {result.notebook}")
    for path in result.charts:
        print(f"chart: {path}")
    for path in result.data_files:
        print(f"data: {path}")
    if result.failed:
        print(f"totes report: analyses failed: {', '.join(result.failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _settings() -> Settings:
    """The warehouse settings; the report needs no bucket, so INGESTION_BUCKET is optional."""
    from runtime.config import Settings

    env = dict(os.environ)
    env.setdefault("INGESTION_BUCKET", "-")
    return Settings.from_env(env)
