"""`totes load [--skip SEQ --reason TEXT] [--failures [--all]]`."""

from __future__ import annotations

import argparse
import json
import sys

from runtime.config import ConfigError, Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "load",
        help="load committed manifests into the warehouse raw layer",
        description="Load every committed manifest not yet loaded, oldest first. "
        "With --skip, first record the blocking manifest SEQ as skipped (with --reason).",
    )
    parser.add_argument(
        "--skip",
        type=int,
        metavar="SEQ",
        help="skip the oldest pending manifest, which a failure blocks",
    )
    parser.add_argument("--reason", metavar="TEXT", help="why it is skipped (kept in the ledger)")
    parser.add_argument(
        "--failures", action="store_true", help="list unresolved load failures instead of loading"
    )
    parser.add_argument("--all", action="store_true", help="with --failures: resolved ones too")
    parser.set_defaults(func=cmd_load)


def cmd_load(args: argparse.Namespace) -> int:
    from lambda_loader import admin
    from lambda_loader.errors import LoadFailed
    from lambda_loader.load import run_load
    from runtime.db import ConnectionConfigError, DatabaseUnavailableError

    if args.skip is not None and not (args.reason or "").strip():
        print("totes load: --skip needs --reason TEXT", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        if args.failures:
            return _print_failures(admin.list_failures(settings, include_resolved=args.all))
        if args.skip is not None:
            key = admin.skip_manifest(settings, args.skip, args.reason)
            print(f"skipped manifest {args.skip} ({key}): {args.reason}", file=sys.stderr)
        result = run_load(settings)
    except (
        LoadFailed,
        admin.SkipRefused,
        ConfigError,
        ConnectionConfigError,
        DatabaseUnavailableError,
    ) as err:
        print(f"totes load: {err}", file=sys.stderr)
        if isinstance(err, LoadFailed):
            print(
                f"  inspect: totes load --failures; after fixing the file: totes load; "
                f"or: totes load --skip {err.seq} --reason TEXT",
                file=sys.stderr,
            )
        return 1
    rows = sum(result.rows.values())
    print(f"loaded {len(result.loaded)} manifest(s), {rows} row(s)", file=sys.stderr)
    print(json.dumps(result.as_dict()))
    return 0


def _print_failures(found: list) -> int:
    if not found:
        print("no load failures", file=sys.stderr)
        return 0
    for failure in found:
        state = f"resolved ({failure.resolution})" if failure.resolved else "OPEN"
        print(
            f"seq {failure.seq}  {state}  attempts={failure.attempts}  "
            f"last={failure.failed_at:%Y-%m-%d %H:%M:%S}  file={failure.file or '-'}"
        )
        print(f"    {failure.error}")
    return 0
