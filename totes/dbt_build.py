"""The cycle's dbt step: `dbt build` (then `dbt docs generate`) as a subprocess, and its results.

dbt reads the warehouse from its profile's `WAREHOUSE_HOST/PORT/USER/PASSWORD/DB` variables;
they are derived here from the same `Settings` every other step uses (a DSN locally, a Secrets
Manager secret in AWS), so a cycle's four steps always point at one warehouse. Every invocation
gets its own `--target-path` and `--log-path`, so two cycles never share dbt's artefacts.

A build costs what arrived, not what the warehouse holds (`plan_build`): dbt records every
build in `ops.dbt_invocations` (dbt_warehouse/macros/build_state.sql); the cycle asks it for the
newest manifest the last successful build of this same project covered (`since_seq`) and reads
from the load ledger which source tables got rows after it. No table: dbt does not run at all.
Some: `dbt build --select source:totesys.<table>+ …`, everything those rows reach (staging,
intermediate, the dimensions and facts built from them, the facts that join a changed
dimension, and every test on any of them), with the tests looking at the new rows only (the
full tests run on their own schedule: `totes test --full`). None has succeeded yet, or the
project changed (a hash of its files, `project_hash`): everything, every row. The docs site
is generated only when it can differ from the one published last (totes/build_record.py).

dbt never outlives the cycle that started it: it runs in a process group of its own, which the
cycle ends when it stops for any reason (an exception, Ctrl-C, SIGTERM turned into an exit by
`totes run`), and on Linux the kernel sends it SIGKILL when the cycle's process dies, even by
`kill -9` (`PR_SET_PDEATHSIG`), which no handler in the parent could do.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from publish.docs import DOCS_FILES
from runtime import db
from runtime.config import Settings

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_warehouse"
PROJECT_VAR = "totes_project"  # dbt_project.yml: the project hash a build resumes under
THROUGH_ENV = "TOTES_DBT_THROUGH_SEQ"  # the newest manifest this build may claim to cover
SOURCE = "totesys"  # the dbt source of the raw tables
DELETIONS = "_deletions"  # its table of deletions (raw._deletions)
# What is not the project: dbt's output, its per-machine state, editors' and tools' files.
NOT_PROJECT = frozenset({"target", "logs", "dbt_packages", "__pycache__"})
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
PARTIAL_PARSE = "partial_parse.msgpack"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_GRACE_S = 10  # after SIGTERM, how long dbt may take to stop before SIGKILL


class DbtBuildError(RuntimeError):
    """dbt failed: the message names the failing nodes (or the tail of dbt's output)."""


class DbtRunner(Protocol):
    """Runs dbt with these arguments and environment, writing its output to `log_file`."""

    def __call__(self, args: Sequence[str], env: Mapping[str, str], log_file: Path) -> int: ...


@dataclass(frozen=True)
class BuildPlan:
    """What a build must cover: the manifests above `since_seq` up to `through_seq`.

    `tables`: the source tables with rows in them (a selective build, or none: nothing to
    build); `full`: every model and every row (no successful build of this project yet)."""

    project: str
    since_seq: int
    through_seq: int
    tables: tuple[str, ...] = ()
    full: bool = False

    @property
    def nothing_new(self) -> bool:
        return not self.full and not self.tables

    def selection(self) -> list[str]:
        """dbt's arguments: every node the new rows reach, but not the unit tests (they test
        SQL, not data: `make test` and any build of a changed project run them) nor the data
        tests tagged `enforced` (a not_null, unique or relationships test repeating a
        constraint or unique index the database checks on every insert, so it cannot fail
        after a build that succeeded; the full tests run them, and
        tests/dbt_warehouse/test_build_scope.py proves every tag matches its constraint), nor
        the views: a view holds no rows, only its definition, which only a new project changes
        (a full build), and a view dropped or re-created outside a build changes the
        relations the cycle compares before it builds (`totes/build_record.py`), which then
        builds everything. Re-creating an unchanged view is several statements (create,
        rename, comments, grants): 0.8–0.95 s per staging view in a measured build.
        Their tests still run: `--indirect-selection empty` keeps every test the graph
        selector reached (dbt's default, eager, also drops a test whose parent is excluded),
        and tests/dbt_warehouse/test_build_scope.py proves the two selections differ by
        exactly the views."""
        if self.full:
            return []
        chosen = [f"source:{SOURCE}.{table}+" for table in self.tables]
        return [
            "--select", *chosen,
            "--exclude-resource-type", "unit_test",
            "--exclude", "tag:enforced", "config.materialized:view",
            "--indirect-selection", "empty",
        ]  # fmt: skip


@dataclass(frozen=True)
class DbtBuildResult:
    models: int
    tests: int
    seeds: int
    warnings: int
    skipped: int
    failures: list[str]
    elapsed_s: float
    target_dir: Path
    docs: dict[str, Path] = field(default_factory=dict)
    plan: BuildPlan | None = None
    unit_tests: int = 0

    def summary(self) -> dict[str, object]:
        plan = self.plan
        return {
            "models": self.models,
            "tests": self.tests,
            "unit_tests": self.unit_tests,
            "seeds": self.seeds,
            "warnings": self.warnings,
            "skipped": self.skipped,
            "failures": self.failures,
            "built": None
            if plan is None
            else "everything"
            if plan.full
            else list(plan.tables) or "nothing new",
            "manifests": None if plan is None else [plan.since_seq, plan.through_seq],
            "docs": bool(self.docs),
        }


def subprocess_runner(args: Sequence[str], env: Mapping[str, str], log_file: Path) -> int:
    """The default runner: the `dbt` installed beside this Python, output kept in a log file.

    dbt runs in its own process group (`start_new_session`), ended with this process: see the
    module docstring. The parent's death signal is tied to the thread that starts dbt, so call
    this from a thread that lives until dbt ends (the cycle's own, as `run_cycle` does).
    """
    executable = Path(sys.executable).with_name("dbt")
    found = str(executable) if executable.exists() else shutil.which("dbt")
    if not found:
        raise DbtBuildError("the dbt executable is not installed (run `make install`)")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("wb") as out:
        process = subprocess.Popen(  # fixed executable, argument list, no shell
            [found, *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        try:
            return process.wait()
        finally:
            end_group(process)


def end_group(process: subprocess.Popen) -> None:
    """End `process` and anything it started in its group: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    _signal_group(process.pid, signal.SIGKILL)  # whatever dbt left behind in its group


def _signal_group(group: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):  # an empty group: all of it has ended
        os.killpg(group, sig)


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A `preexec_fn` asking the kernel to SIGKILL the child when `parent` dies (Linux only;
    None elsewhere, where the process group still ends dbt on any orderly exit)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the child

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def dbt_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for dbt: `base` (default: this process's) plus the warehouse variables."""
    if settings.warehouse_dsn:
        params = db.parse_dsn(settings.warehouse_dsn)
    elif settings.warehouse_secret_arn:
        params = db.read_secret(settings.warehouse_secret_arn, settings.client("secretsmanager"))
    else:
        raise DbtBuildError("set WAREHOUSE_DSN (local) or WAREHOUSE_SECRET_ARN (AWS) for dbt")
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "WAREHOUSE_HOST": params.host or "localhost",
            "WAREHOUSE_PORT": str(params.port),
            "WAREHOUSE_USER": params.user,
            "WAREHOUSE_PASSWORD": params.password or "",
            "WAREHOUSE_DB": params.database,
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
    )
    if params.sslmode:
        env["WAREHOUSE_SSLMODE"] = params.sslmode
    return env


def run_build(
    settings: Settings,
    work_dir: Path,
    *,
    runner: DbtRunner = subprocess_runner,
    project_dir: Path = PROJECT_DIR,
    docs: bool = False,
    previous_target: Path | None = None,
    unit_tests: bool = True,
    everything: bool = False,
) -> DbtBuildResult:
    """`dbt build` of what new rows reach (`plan_build`) into `work_dir/target`; raises
    DbtBuildError naming what failed. Nothing new: dbt does not run.

    `unit_tests=False` leaves dbt's unit tests out of a full build too (a selective build never
    runs them): they read fixed inputs, never the warehouse, so once they passed on a project
    they pass on it again. `everything`: build every model whatever arrived (the caller saw a
    relation dbt wrote dropped or replaced: only a whole build is sure to make it again). With
    `docs`, a successful build is followed by `generate_docs`.
    `previous_target`: an earlier run's target, whose saved parse lets dbt parse partially
    (dbt itself decides whether it still applies).
    """
    if not (project_dir / "dbt_project.yml").exists():
        raise DbtBuildError(f"no dbt project at {project_dir}")
    target, logs = work_dir / "target", work_dir / "logs"
    saved_parse = previous_target / PARTIAL_PARSE if previous_target else None
    if saved_parse and saved_parse.exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(saved_parse, target / PARTIAL_PARSE)
    env = dbt_env(settings)
    project = project_hash(project_dir)
    common = _common(project_dir, target, logs, project)
    conn = settings.warehouse_connection(application_name="totes-dbt")
    try:
        plan = plan_build(conn, project)
    finally:
        db.close(conn)
    if everything and not plan.full:
        plan = replace(plan, full=True)
    if plan.nothing_new:
        return DbtBuildResult(0, 0, 0, 0, 0, [], 0.0, target, plan=plan)
    leave_out = [] if unit_tests or not plan.full else ["--exclude-resource-type", "unit_test"]
    args = ["build", *common, *plan.selection(), *leave_out]
    code = runner(args, {**env, THROUGH_ENV: str(plan.through_seq)}, logs / "build.out")
    result = replace(parse_run_results(target / "run_results.json", target), plan=plan)
    if code != 0 or result.failures:
        detail = ", ".join(result.failures) or _tail(logs / "build.out")
        raise DbtBuildError(f"dbt build failed (exit {code}): {detail}")
    return (
        generate_docs(settings, work_dir, result, runner=runner, project_dir=project_dir)
        if docs
        else result
    )


def generate_docs(
    settings: Settings,
    work_dir: Path,
    built: DbtBuildResult,
    *,
    runner: DbtRunner = subprocess_runner,
    project_dir: Path = PROJECT_DIR,
) -> DbtBuildResult:
    """`dbt docs generate` into the target of the build in `work_dir` (its manifest is reused
    when the build ran: `--no-compile`); the result with the site's files (a docs failure is an
    error too)."""
    target, logs = work_dir / "target", work_dir / "logs"
    project = built.plan.project if built.plan else project_hash(project_dir)
    common = _common(project_dir, target, logs, project)
    # After a build its manifest is in the target; without one, docs must compile the project.
    compiled = ["--no-compile"] if (target / "manifest.json").exists() else []
    code = runner(["docs", "generate", *compiled, *common], dbt_env(settings), logs / "docs.out")
    if code != 0:
        raise DbtBuildError(f"dbt docs generate failed (exit {code}): {_tail(logs / 'docs.out')}")
    found = {name: target / name for name in DOCS_FILES if (target / name).exists()}
    return replace(built, docs=found)


def project_vars(project: str) -> list[str]:
    """`--vars` for every dbt invocation of the project, builds, docs and tests alike: dbt keeps
    its saved parse only for the vars it was made with, so a docs run without them would make
    the next build parse the whole project again (about 5 s)."""
    return ["--vars", json.dumps({PROJECT_VAR: project})]


def _common(project_dir: Path, target: Path, logs: Path, project: str) -> list[str]:
    """The arguments every dbt invocation here takes: where things are, and `project_vars`."""
    return [
        "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
        "--target-path", str(target), "--log-path", str(logs), *project_vars(project),
    ]  # fmt: skip


def run_full_tests(
    settings: Settings,
    work_dir: Path,
    *,
    runner: DbtRunner = subprocess_runner,
    project_dir: Path = PROJECT_DIR,
) -> DbtBuildResult:
    """`dbt test`: every data test (and unit test) over every row, building nothing: what the
    cycle's builds leave to their own schedule (`totes test --full`; in AWS the hourly
    CodeBuild run with DBT_TESTS=full). Outside a build no since_seq applies, so no test is
    narrowed. Raises DbtBuildError naming the failed tests."""
    target, logs = work_dir / "target", work_dir / "logs"
    common = _common(project_dir, target, logs, project_hash(project_dir))
    code = runner(["test", *common], dbt_env(settings), logs / "test.out")
    result = parse_run_results(target / "run_results.json", target)
    if code != 0 or result.failures:
        detail = ", ".join(result.failures) or _tail(logs / "test.out")
        raise DbtBuildError(f"dbt test failed (exit {code}): {detail}")
    return result


def project_hash(project_dir: Path = PROJECT_DIR) -> str:
    """sha256 of the dbt project: every file's sha256 and path, in path order (what
    `sha256sum` prints for them, so infra/aws/codebuild/run_dbt.sh gets the same hash), then
    the dbt version. A change to any model, macro, test, seed or setting changes it."""
    root = project_dir.parent
    lines = []
    for path in sorted(project_dir.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        parts = path.relative_to(project_dir).parts
        if not path.is_file() or any(p in NOT_PROJECT or p.startswith(".") for p in parts):
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(root).as_posix()}\n")
    listing = hashlib.sha256("".join(lines).encode()).hexdigest()
    return hashlib.sha256(f"{listing} dbt {_dbt_version()}".encode()).hexdigest()


def _dbt_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{version('dbt-core')} {version('dbt-postgres')}"
    except PackageNotFoundError:
        return "unknown"


def plan_build(conn: object, project: str) -> BuildPlan:
    """What the next build must cover, from `ops.dbt_invocations` and the load ledger.

    `since_seq`: the `through_seq` of the newest successful build of `project` (what dbt's
    on-run-start hook takes too); every manifest above it is unbuilt, whatever happened to the
    cycles in between (a failed or killed build never counts). `through_seq`: the newest
    manifest in the ledger now; the build records no more than that (THROUGH_ENV), so rows
    loaded while it runs are built again by the next one."""
    run = conn.run  # type: ignore[attr-defined]
    [[builds, ledger, tables]] = run(
        "select to_regclass('ops.dbt_invocations') is not null,"
        " to_regclass('raw._manifest_ledger') is not null,"
        " to_regclass('raw._manifest_tables') is not null"
    )
    through = (
        int(run("select coalesce(max(seq), 0) from raw._manifest_ledger")[0][0]) if ledger else 0
    )
    found = (
        run(
            "select through_seq from ops.dbt_invocations where status = 'succeeded'"
            " and project = :project and project <> '' order by finished_at desc limit 1",
            project=project,
        )
        if builds
        else []
    )
    if not found or not tables:
        return BuildPlan(project, 0, through, full=True)
    since = int(found[0][0])
    changed = run(
        "select distinct table_name from raw._manifest_tables"
        " where seq > :since and seq <= :through and rows > 0 order by 1",
        since=since,
        through=through,
    )
    with_rows = [str(t) for [t] in changed]
    # Deletions are rows of their own table (the dbt source `totesys._deletions`): a manifest
    # holding only deletions has rows = 0 for every table.
    if (
        run("select to_regclass('raw._deletions') is not null")[0][0]
        and run(
            "select exists (select 1 from raw._deletions"
            " where _manifest_seq > :since and _manifest_seq <= :through)",
            since=since,
            through=through,
        )[0][0]
    ):
        with_rows.append(DELETIONS)
    return BuildPlan(project, since, through, tuple(with_rows))


def parse_run_results(path: Path, target_dir: Path) -> DbtBuildResult:
    """Counts per node type and the failing nodes from dbt's `run_results.json`."""
    if not path.exists():
        return DbtBuildResult(0, 0, 0, 0, 0, [], 0.0, target_dir)
    try:
        payload = json.loads(path.read_text())
        results = payload["results"]
    except (json.JSONDecodeError, KeyError) as err:
        raise DbtBuildError(f"{path} is not a dbt run_results file: {err}") from None
    kinds = [str(r["unique_id"]).split(".", 1)[0] for r in results]
    failures = [
        f"{r['unique_id']} ({r['status']}: {_first_line(r.get('message'))})"
        for r in results
        if r.get("status") in FAILED_STATUSES
    ]
    return DbtBuildResult(
        models=kinds.count("model"),
        tests=kinds.count("test") + kinds.count("unit_test"),
        seeds=kinds.count("seed"),
        warnings=sum(1 for r in results if r.get("status") == "warn"),
        skipped=sum(1 for r in results if r.get("status") == "skipped"),
        failures=failures,
        elapsed_s=round(float(payload.get("elapsed_time") or 0.0), 3),
        target_dir=target_dir,
        unit_tests=kinds.count("unit_test"),
    )


def _first_line(message: object, lines: int = 4) -> str:
    """The start of dbt's message (its first line alone often just names the file)."""
    text = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    return " ".join(text[:lines])[:500]


def _tail(log_file: Path, lines: int = 15) -> str:
    if not log_file.exists():
        return "(no dbt output)"
    text = log_file.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])
