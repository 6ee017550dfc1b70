"""The cycle's dbt step: `dbt build` (then `dbt docs generate`) as a subprocess, and its results.

dbt reads the warehouse from its profile's `WAREHOUSE_HOST/PORT/USER/PASSWORD/DB` variables;
they are derived here from the same `Settings` every other step uses (a DSN locally, a Secrets
Manager secret in AWS), so a cycle's four steps always point at one warehouse. Every invocation
gets its own `--target-path` and `--log-path`, so two cycles never share dbt's artefacts.

dbt never outlives the cycle that started it: it runs in a process group of its own, which the
cycle ends when it stops for any reason (an exception, Ctrl-C, SIGTERM turned into an exit by
`totes run`), and on Linux the kernel sends it SIGKILL when the cycle's process dies, even by
`kill -9` (`PR_SET_PDEATHSIG`), which no handler in the parent could do.
"""

from __future__ import annotations

import ctypes
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
class DbtBuildResult:
    models: int
    tests: int  # data tests and unit tests
    seeds: int
    warnings: int
    skipped: int
    failures: list[str]
    elapsed_s: float
    target_dir: Path
    docs: dict[str, Path] = field(default_factory=dict)
    unit_tests: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "models": self.models,
            "tests": self.tests,
            "unit_tests": self.unit_tests,
            "seeds": self.seeds,
            "warnings": self.warnings,
            "skipped": self.skipped,
            "failures": self.failures,
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
    docs: bool = True,
    previous_target: Path | None = None,
    unit_tests: bool = True,
) -> DbtBuildResult:
    """`dbt build` into `work_dir/target`; raises DbtBuildError naming what failed.

    `unit_tests=False` leaves dbt's unit tests out: they read fixed inputs, never the
    warehouse, so once they passed on a project they pass on it again.

    With `docs`, a successful build is followed by `dbt docs generate` into the same target, so
    the publish step can upload the docs site (a docs failure is an error too).
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
    common = _locations(project_dir, target, logs)
    env = dbt_env(settings)
    leave_out = [] if unit_tests else ["--exclude-resource-type", "unit_test"]
    code = runner(["build", *common, *leave_out], env, logs / "build.out")
    result = parse_run_results(target / "run_results.json", target)
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
    """`dbt docs generate` into the target of the build in `work_dir` (its manifest is reused:
    `--no-compile`); the result with the site's files (a docs failure is an error too)."""
    target, logs = work_dir / "target", work_dir / "logs"
    common = _locations(project_dir, target, logs)
    code = runner(
        ["docs", "generate", "--no-compile", *common], dbt_env(settings), logs / "docs.out"
    )
    if code != 0:
        raise DbtBuildError(f"dbt docs generate failed (exit {code}): {_tail(logs / 'docs.out')}")
    found = {name: target / name for name in DOCS_FILES if (target / name).exists()}
    return replace(built, docs=found)


def _locations(project_dir: Path, target: Path, logs: Path) -> list[str]:
    return [
        "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
        "--target-path", str(target), "--log-path", str(logs),
    ]  # fmt: skip


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
