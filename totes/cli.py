"""`totes`: the one entry point for people and the Makefile.

Every subcommand is defined here, in `build_parser`. A handler reads its arguments and the
environment, calls a plain function of the pipeline (the steps, the stand-in, the cycle, the
status, the report) and hands the result to `totes.console`, which prints it.

Handlers import the pipeline's modules when they run, not at the top: those pull in pyarrow,
faker and nbclient, several times `totes env`'s whole start-up, and `env`/`up` must stay fast.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from infra.local.stack import LocalStack, StackError, default_home
from runtime import db, logs
from runtime.config import ConfigError, Settings
from totes import console

STACK_COMMANDS = ("up", "down", "env")  # the ones that need no pipeline settings
REPORT_DIR = Path("reports")  # `totes report`'s default output folder, under the current one
REPORT_OK, REPORT_FAILED, REPORT_UNAVAILABLE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="totes", description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _stack_commands(sub)
    _standin_commands(sub)
    _step_commands(sub)
    _cycle_commands(sub)
    _verify_command(sub)
    _report_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure()
    args = build_parser().parse_args(argv)
    if args.command not in STACK_COMMANDS:
        default_to_local_stack(os.environ)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except StackError as err:  # one place turns a stack failure into a clear message
        console.error(args.command, err)
        return 1


# ---- up, down, env: the local stack ------------------------------------------------------------


def _stack_commands(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("up", help="start the local stack (idempotent)").set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the local stack, keeping its data")
    down.add_argument("--purge", action="store_true", help="also delete the stack's data")
    down.set_defaults(func=cmd_down)
    sub.add_parser("env", help="print export lines for the local stack").set_defaults(func=cmd_env)


def cmd_up(args: argparse.Namespace) -> int:
    console.stack_up(LocalStack.from_env().up())
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    LocalStack.from_env().down(purge=args.purge)
    console.stack_down(args.purge)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    console.env_exports(LocalStack.from_env().env())
    return 0


def default_to_local_stack(environ: MutableMapping[str, str]) -> None:
    """Fill the variables the environment does not set from the local stack, when one has
    been created under TOTES_HOME: `totes up && totes seed && totes run` works without
    `eval "$(totes env)"`. Variables already set (a real database, AWS) always win."""
    stack = LocalStack.from_env()
    if not stack.state_file.exists():
        return
    for name, value in stack.env().items():
        if name != "PG_BIN":
            environ.setdefault(name, value)


# ---- seed, simulate: the totesys stand-in ------------------------------------------------------


def _standin_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "seed", help="create the totesys schema and fill it with realistic, deterministic data"
    )
    _dsn_option(parser)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="volume; 1 = the real database in late 2024"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (same seed, same rows)")
    parser.add_argument(
        "--end-date",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="data ends at this date's midnight UTC (default: today)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="seed even over existing totesys data (dropped) or beside other tables (kept)",
    )
    parser.add_argument(
        "--if-empty", action="store_true", help="do nothing when totesys already holds data"
    )
    parser.set_defaults(func=cmd_seed)

    parser = sub.add_parser(
        "simulate", help="write a burst of business activity (new orders, updates) to totesys"
    )
    _dsn_option(parser)
    counts = (
        ("--orders", 20, "new sales orders, each with its transaction and payment"),
        ("--purchases", 8, "new purchase orders, each with its transaction and payment"),
        ("--updates", 5, "sales orders amended (units sold or unit price; unpaid payment follows)"),
        ("--payments-paid", 5, "unpaid payments flipped to paid"),
        ("--address-moves", 1, "counterparties whose legal address is edited"),
        ("--department-renames", 1, "departments renamed"),
        ("--new-designs", 1, "new designs"),
        ("--deletes", 0, "rows deleted as the foreign keys allow: payment, transaction, order"),
    )
    for flag, default, text in counts:
        parser.add_argument(flag, type=_count, default=default, metavar="N", help=text)
    parser.add_argument("--seed", type=int, default=None, help="random seed for the choices")
    parser.set_defaults(func=cmd_simulate)


def cmd_seed(args: argparse.Namespace) -> int:
    from infra.local.totesys.seed import SeedError, seed  # slow to load: see the module docstring

    def run() -> None:
        with _totesys(args) as conn:
            report = seed(
                conn,
                scale=args.scale,
                seed=args.seed,
                progress=console.seed_progress(),
                end=args.end_date,
                force=args.force,
                if_empty=args.if_empty,
            )
        console.seeded(report)

    return _guard("seed", run, SeedError)


def cmd_simulate(args: argparse.Namespace) -> int:
    from infra.local.totesys.simulate import SimulationError, simulate  # slow to load: see above

    def run() -> None:
        with _totesys(args) as conn:
            result = simulate(
                conn,
                orders=args.orders,
                purchases=args.purchases,
                updates=args.updates,
                payments_paid=args.payments_paid,
                address_moves=args.address_moves,
                department_renames=args.department_renames,
                new_designs=args.new_designs,
                seed=args.seed,
                deletes=args.deletes,
            )
        console.simulated(result)

    return _guard("simulate", run, SimulationError)


def _dsn_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        default=None,
        help="postgresql:// URI of the database to write (default: $TOTESYS_DSN)",
    )


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


@contextmanager
def _totesys(args: argparse.Namespace) -> Iterator[db.pg8000.native.Connection]:
    """Connect to --dsn or $TOTESYS_DSN (read here, at the edge); closes on exit."""
    dsn = args.dsn or os.environ.get("TOTESYS_DSN")
    if not dsn:
        raise db.ConnectionConfigError(
            'no database: pass --dsn, or set TOTESYS_DSN (eval "$(totes env)")'
        )
    conn = db.connect(dsn, application_name="totes-seed")
    try:
        yield conn
    finally:
        conn.close()


def _guard(command: str, run: Callable[[], None], refused: type[Exception]) -> int:
    """Expected failures (`refused` and the database's) become one line on stderr, status 1."""
    try:
        run()
    except (db.DatabaseUnavailableError, db.ConnectionConfigError, refused, ValueError) as err:
        console.error(command, err)
        return 1
    return 0


# ---- extract, load: the pipeline's first two steps, one at a time ------------------------------


def _step_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "extract",
        help="extract changed totesys rows to the ingestion bucket",
        description="Extract every table's rows changed since its committed watermark to "
        "Parquet in the ingestion bucket and commit the run with a manifest. "
        "With --allow-deletes, first let that table's refused deletions through, once.",
    )
    parser.add_argument(
        "--allow-deletes",
        action="append",
        metavar="TABLE",
        help="record TABLE's deletions past the guard in the next run (repeatable; needs --reason)",
    )
    parser.add_argument("--reason", metavar="TEXT", help="why the deletions are real (kept)")
    parser.set_defaults(func=cmd_extract)

    parser = sub.add_parser(
        "load",
        help="load committed manifests into the warehouse raw layer",
        description="Load every committed manifest not yet loaded, oldest first. "
        "With --skip, first record the blocking manifest SEQ as skipped (with --reason); "
        "the next extract re-extracts its window.",
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


def cmd_extract(args: argparse.Namespace) -> int:
    from ingest.extract import ExtractOptions, allow_deletes, run_extract  # slow: see docstring

    if args.allow_deletes and not (args.reason or "").strip():
        console.error("extract", "--allow-deletes needs --reason TEXT")
        return 2
    try:
        if args.allow_deletes:
            allow_deletes(Settings.from_env(), args.allow_deletes, reason=args.reason)
        result = run_extract(Settings.from_env(), options=ExtractOptions.from_env(os.environ))
    except Exception as err:  # already logged as an ERROR line by run_extract
        console.error("extract", f"{type(err).__name__}: {err}")
        return 1
    console.extracted(result)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    # slow to load: see the module docstring
    from lambda_loader import admin
    from lambda_loader.errors import LoadFailed
    from lambda_loader.load import run_load
    from totes.cycle import ANOTHER_CYCLE, cycle_lock

    if args.skip is not None and not (args.reason or "").strip():
        console.error("load", "--skip needs --reason TEXT")
        return 2
    try:
        settings = Settings.from_env()
        if args.failures:
            console.load_failures(admin.list_failures(settings, include_resolved=args.all))
            return 0
        # Outside a cycle, a load takes the cycle's lock too: raw never changes under a cycle's
        # dbt build (its models would read two different raws) and a skip never races its load.
        with cycle_lock(settings, logs.run_logger("totes.load", logs.new_run_id())) as held:
            if held is False:
                console.error("load", f"{ANOTHER_CYCLE}: nothing loaded; run it when it ends")
                return 1
            if args.skip is not None:
                key = admin.skip_manifest(settings, args.skip, args.reason)
                console.skipped(args.skip, key, args.reason)
            result = run_load(settings)
    except (
        LoadFailed,
        admin.SkipRefused,
        ConfigError,
        db.ConnectionConfigError,
        db.DatabaseUnavailableError,
    ) as err:
        console.error("load", err)
        if isinstance(err, LoadFailed):
            console.load_blocked(err.seq)
        return 1
    console.loaded(result)
    return 0


# ---- run, status: the whole cycle --------------------------------------------------------------


def _cycle_commands(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="one pipeline cycle: extract → load → dbt build → publish")
    run.add_argument(
        "--every",
        type=parse_interval,
        metavar="INTERVAL",
        help="keep cycling at this interval (30s, 5m, 1h) until interrupted",
    )
    run.add_argument(
        "--skip-publish", action="store_true", help="stop after dbt build (no lake copy)"
    )
    run.add_argument(
        "--verify",
        action="store_true",
        help="after a successful cycle, run `totes verify`; drift alerts and exits 1",
    )
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="watermarks, last runs, row counts, lag")
    status.set_defaults(func=cmd_status)
    tests = sub.add_parser(
        "test",
        help="every dbt data test over every row (a cycle tests only the rows it brought)",
        description="Runs `dbt test` on the warehouse: every data test over every row, building "
        "nothing. A cycle's build tests only the rows that arrived since the last successful "
        "build; run this on a schedule (hourly, as the AWS stack does). A failure is alerted "
        "like a failed cycle and exits 1.",
    )
    tests.add_argument("--full", action="store_true", required=True, help="every row (the mode)")
    tests.set_defaults(func=cmd_test)


def parse_interval(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an interval like 30s, 5m or 1h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def cmd_run(args: argparse.Namespace) -> int:
    from totes import cycle  # its steps are slow to load: see the module docstring

    settings = Settings.from_env()
    fail_step = os.environ.get(cycle.FAIL_STEP_ENV) or None  # test hook: see totes.cycle
    steps = cycle.default_steps(skip_publish=args.skip_publish)
    runs = default_home() / "runs"  # dbt's target and logs per run, the newest few kept

    def once() -> cycle.CycleResult:
        return cycle.run_cycle(settings, steps=steps, fail_step=fail_step, work_dir=runs)

    # SIGTERM (a service manager, `kill`) unwinds like an error, so the cycle ends its dbt and
    # lets go of the cycle lock on the way out; the next cycle marks its entry `abandoned`.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if args.every is None:
        result = once()
        console.cycle_table(result)
        if args.verify:
            return _verify_after(settings, result, one_line=False)
        return result.exit_code  # 0 too when another cycle was running: not a failure
    try:
        while True:
            began = time.monotonic()
            result = once()
            console.cycle_line(result)
            if args.verify:
                _verify_after(settings, result, one_line=True)
            time.sleep(max(0.0, args.every - (time.monotonic() - began)))
    except KeyboardInterrupt:
        console.stopped()
        return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def cmd_test(args: argparse.Namespace) -> int:
    import tempfile
    from datetime import UTC, datetime

    from totes import alerts, dbt_build  # dbt_build imports publish: see the module docstring

    settings = Settings.from_env()
    run_id = logs.new_run_id()
    log = logs.run_logger("totes.test", run_id)
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix=f"totes-test-{run_id}-") as folder:
        try:
            result = dbt_build.run_full_tests(settings, Path(folder))
        except (dbt_build.DbtBuildError, ConfigError, db.DatabaseUnavailableError) as err:
            log.error("full tests failed", step="full tests", error=str(err))
            failure = alerts.FailureAlert(run_id, "full tests", str(err), started.isoformat(), [])
            try:
                alerts.send(settings, failure)
            except alerts.AlertError as not_sent:
                log.error("alert not sent", step="full tests", error=str(not_sent))
            console.error("test", err)
            return 1
    log.info("full tests passed", tests=result.tests, warnings=result.warnings)
    console.full_tests(result.tests, result.warnings)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from totes import status  # slow to load (publish's pyarrow): see the module docstring

    stack = LocalStack.from_env()
    report = status.gather(
        Settings.from_env(), stack=stack.status() if stack.state_file.exists() else None
    )
    console.render_status(report)
    return 1 if report.problems else 0


# ---- verify: totesys against the marts ---------------------------------------------------------

VERIFY_OK, VERIFY_DRIFT, VERIFY_FAILED = 0, 1, 2


def _verify_command(sub: argparse._SubParsersAction) -> None:
    verify = sub.add_parser(
        "verify",
        help="compare totesys with the marts: counts, keys, every carried value",
        description="Compare every totesys table with its current state in the marts (row "
        "counts, key sets, a fingerprint of every value the marts carry), read-only on both "
        "sides. Prints what differs with example keys. Exit 0: no drift; 1: drift; 2: the "
        "check could not run.",
    )
    verify.add_argument(
        "--table",
        action="append",
        dest="tables",
        metavar="NAME",
        help="check only this source table (repeatable; default: all)",
    )
    verify.add_argument(
        "--examples", type=_count, default=5, metavar="N", help="example keys per kind (5)"
    )
    verify.add_argument(
        "--settle",
        type=parse_interval,
        default=0.0,
        metavar="INTERVAL",
        help="on drift, wait up to this long (10m) for a cycle, check again, and report only "
        "what drifted both times: a deletion or silent change made just before the check "
        "is the next cycle's to ship",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from verify.verify import VerifyOptions, run_verify  # see the module docstring

    try:
        options = VerifyOptions(
            tables=tuple(args.tables or ()), examples=args.examples, settle_s=args.settle
        )
        result = run_verify(Settings.from_env(), options=options)
    except (ConfigError, ValueError, db.ConnectionConfigError, db.DatabaseUnavailableError) as err:
        console.error("verify", err)
        return VERIFY_FAILED
    except Exception as err:  # a query refused (timeout, missing privilege): say which
        console.error("verify", f"{type(err).__name__}: {err}")
        return VERIFY_FAILED
    if args.json:
        console.verify_json(result)
    else:
        console.verify_table(result)
    return VERIFY_OK if result.ok else VERIFY_DRIFT


def _verify_after(settings: Settings, cycle_result: Any, *, one_line: bool) -> int:
    """`totes run --verify`: verify after a cycle that ran and succeeded; drift alerts. The
    verdict goes to stderr beside the cycle's table (`one_line`: its line, under --every)."""
    from totes import verification  # see the module docstring

    if not cycle_result.ok or cycle_result.skipped:
        console.verify_skipped(cycle_result)
        return cycle_result.exit_code
    try:
        outcome = verification.after_cycle(settings, cycle_result.run_id)
    except Exception as err:  # the cycle itself succeeded; the check could not run
        console.error("run --verify", f"{type(err).__name__}: {err}")
        return VERIFY_FAILED
    if one_line:
        console.verify_line(outcome.result)
    else:
        console.verify_table(outcome.result, stderr=True)
    if outcome.alert_error:
        console.error("run --verify", outcome.alert_error)
    return VERIFY_OK if outcome.result.ok else VERIFY_DRIFT


# ---- report ------------------------------------------------------------------------------------


def _report_command(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
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
    from totes.report import build  # nbclient and matplotlib: see the module docstring

    out = args.out or Path(os.environ.get("TOTES_REPORT_DIR") or REPORT_DIR)
    try:
        result = build.build_report(
            _report_settings(), out, sql_dir=args.sql_dir, timeout_s=args.timeout
        )
    except build.WarehouseUnavailable as err:
        console.error("report", err)
        return REPORT_UNAVAILABLE
    except build.ReportError as err:
        console.error("report", err)
        return REPORT_FAILED
    console.report_written(result)
    if result.failed:
        console.error("report", f"analyses failed: {', '.join(result.failed)}")
        return REPORT_FAILED
    return REPORT_OK


def _report_settings() -> Settings:
    """The warehouse settings; the report needs no bucket, so INGESTION_BUCKET is optional."""
    env = dict(os.environ)
    env.setdefault("INGESTION_BUCKET", "-")
    return Settings.from_env(env)


if __name__ == "__main__":
    sys.exit(main())
