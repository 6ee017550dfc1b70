"""One pipeline cycle: extract → load → `dbt build` → publish, the state machine's steps locally.

`run_cycle(settings)` runs the steps in order and stops at the first failure. Every step's
outcome (rows, files, models, tests, duration) is logged as JSON with the cycle's run id and kept
in `ops.cycle_runs` in the warehouse, which `totes status` reads. A failure is logged at ERROR,
published to the SNS alert topic (`settings.alert_topic_arn`) as a JSON message naming the run,
the failing step and the error, and turned into a non-zero exit by `totes run`.

One cycle at a time: a cycle first takes the cycle lock in the warehouse (`ops.CYCLE_LOCK`, a
session-level advisory lock held on a connection of its own until the cycle ends; the server
drops it with the session, even after `kill -9`). A cycle that finds it taken does nothing: it
logs "another cycle is running", records nothing, sends no alert and returns a `skipped` result
(exit 0); the running cycle and the next one cover the same rows. The lock holder then marks any
`running` entry left in `ops.cycle_runs` as `abandoned`: its process died mid-cycle.

Test hook: `run_cycle(..., fail_step="load")`, or `TOTES_FAIL_STEP=load totes run`, makes that
step raise `InjectedFailure` before it does any work, so tests can prove each failure path
(stop, alert, record, recover) on the real stack. It is read only by the command line, never in
AWS, and must never be set outside tests.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.extract import run_extract
from lambda_loader.load import run_load
from publish.docs import publish_docs
from publish.publish import publish
from runtime import logs
from runtime.config import Settings
from totes import alerts, build_record, dbt_build, ops, quarantine

STEP_NAMES = ("extract", "load", "dbt", "publish")
FAIL_STEP_ENV = "TOTES_FAIL_STEP"
KEEP_RUN_DIRS = 20
ANOTHER_CYCLE = "another cycle is running"


class InjectedFailure(RuntimeError):
    """Raised by the test hook (`fail_step` / TOTES_FAIL_STEP) before a step does any work."""


class CycleFailed(RuntimeError):
    """A cycle stopped at a step; carries the run id and the step's name."""

    def __init__(self, run_id: str, step: str, error: str) -> None:
        super().__init__(f"run {run_id} failed at {step}: {error}")
        self.run_id, self.step, self.error = run_id, step, error


@dataclass
class CycleContext:
    """What every step receives: configuration, the run id, a private work folder and the
    results of the steps before it (the publish step reads the dbt step's docs)."""

    settings: Settings
    run_id: str
    work_dir: Path
    dbt_runner: dbt_build.DbtRunner
    dbt_docs: bool = True
    previous_dbt_target: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)
    # The run whose build the dbt step found nothing changed since (it ran no dbt).
    unchanged_since: str | None = None


@dataclass(frozen=True)
class StepReport:
    """What a step did, in the counts that matter for it (None: not applicable)."""

    rows: int | None = None
    files: int | None = None
    models: int | None = None
    tests: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    result: Any = None  # the step's own result object, for the steps after it


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[CycleContext], StepReport]


@dataclass(frozen=True)
class StepOutcome:
    step: str
    status: str  # succeeded | failed | not run
    duration_s: float = 0.0
    rows: int | None = None
    files: int | None = None
    models: int | None = None
    tests: int | None = None
    error: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "detail": dict(self.detail)}

    def describe(self) -> str:
        counts = [
            f"{value} {name}"
            for name, value in (
                ("rows", self.rows),
                ("files", self.files),
                ("models", self.models),
                ("tests", self.tests),
            )
            if value is not None
        ]
        return f"{self.step} {'/'.join(counts) or self.status} {self.duration_s:.1f}s"


@dataclass(frozen=True)
class CycleResult:
    run_id: str
    started_at: datetime
    finished_at: datetime
    steps: tuple[StepOutcome, ...]
    failed_step: str | None = None
    error: str | None = None
    skipped: bool = False  # another cycle held the lock: this one did nothing

    @property
    def ok(self) -> bool:
        return self.failed_step is None

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def duration_s(self) -> float:
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def step(self, name: str) -> StepOutcome:
        for outcome in self.steps:
            if outcome.step == name:
                return outcome
        raise KeyError(f"run {self.run_id} has no step {name!r}")

    def raise_for_failure(self) -> None:
        if self.failed_step is not None:
            raise CycleFailed(self.run_id, self.failed_step, self.error or "")

    def describe(self) -> str:
        if self.skipped:
            return f"run {self.run_id} skipped: {ANOTHER_CYCLE}"
        state = "ok" if self.ok else f"FAILED at {self.failed_step}: {self.error}"
        ran = " · ".join(o.describe() for o in self.steps if o.status == "succeeded")
        return f"run {self.run_id} {state} in {self.duration_s:.1f}s" + (f" ({ran})" if ran else "")


# ---- the cycle ---------------------------------------------------------------------------------


def run_cycle(
    settings: Settings,
    *,
    steps: Sequence[Step] | None = None,
    dbt_runner: dbt_build.DbtRunner = dbt_build.subprocess_runner,
    run_id: str | None = None,
    fail_step: str | None = None,
    work_dir: Path | None = None,
    dbt_docs: bool = True,
) -> CycleResult:
    """Run the steps in order, stop at the first failure, alert on it, record the cycle.

    Returns the result rather than raising, so the caller decides the exit code; a failure has
    already been logged, alerted and recorded when this returns (`result.raise_for_failure()`).
    `work_dir`: a folder under which each run keeps dbt's target and logs (`<run_id>/dbt`, the
    newest few kept); default a temporary folder per cycle. `dbt_docs`: also generate the dbt
    docs site, which the publish step uploads (so never in a cycle without that step).

    While another cycle holds the cycle lock, returns at once a result with `skipped` set
    (nothing run, recorded or alerted; `ok`, exit code 0).
    """
    chosen = list(default_steps() if steps is None else steps)
    if fail_step is not None and fail_step not in {s.name for s in chosen}:
        raise ValueError(f"fail_step {fail_step!r} is not one of {[s.name for s in chosen]}")
    run_id = run_id or logs.new_run_id()
    log = logs.run_logger("totes.cycle", run_id)
    started = datetime.now(UTC)
    with cycle_lock(settings, log) as held:
        if held is False:
            log.info(ANOTHER_CYCLE, outcome="skipped")
            return CycleResult(run_id, started, datetime.now(UTC), (), skipped=True)
        return _locked_cycle(
            settings, chosen, log, started, run_id, dbt_runner, fail_step, work_dir, dbt_docs,
            guarded=held is True,
        )  # fmt: skip


def _locked_cycle(
    settings: Settings,
    chosen: Sequence[Step],
    log: logs.RunLogger,
    started: datetime,
    run_id: str,
    dbt_runner: dbt_build.DbtRunner,
    fail_step: str | None,
    work_dir: Path | None,
    dbt_docs: bool,
    *,
    guarded: bool,
) -> CycleResult:
    """The cycle proper, run while this process holds the cycle lock (`guarded`), or could not
    even ask for it (the warehouse is unreachable: the steps will say so)."""
    log.info("cycle started", steps=[s.name for s in chosen])

    def start(conn: Any) -> None:
        # Only the lock's holder knows that no `running` entry but its own is alive.
        for abandoned in ops.mark_abandoned(conn, run_id, started) if guarded else ():
            log.warning("marked an earlier cycle abandoned", abandoned_run_id=abandoned)
        ops.record_cycle_start(conn, run_id, started)

    _record(settings, log, start)

    outcomes: list[StepOutcome] = []
    failed: tuple[str, str] | None = None
    with _work_dir(work_dir, run_id) as folder:
        previous = _previous_target(work_dir, run_id) if work_dir else None
        # The docs site is the publish step's to upload: a cycle without it generates none.
        docs = dbt_docs and any(step.name == "publish" for step in chosen)
        context = CycleContext(settings, run_id, folder, dbt_runner, docs, previous)
        for step in chosen:
            if failed:
                outcomes.append(StepOutcome(step.name, "not run"))
                continue
            outcome = _run_step(step, context, fail_step == step.name, log)
            outcomes.append(outcome)
            if outcome.status == "failed":
                failed = (step.name, outcome.error or "")

    result = CycleResult(
        run_id, started, datetime.now(UTC), tuple(outcomes), *(failed or (None, None))
    )
    if result.ok:
        log.info("cycle succeeded", duration_s=result.duration_s)
    else:
        log.error(
            "cycle failed",
            step=result.failed_step,
            error=result.error,
            duration_s=result.duration_s,
        )
        _alert(settings, result, log)
    _record(
        settings,
        log,
        lambda conn: ops.record_cycle_end(
            conn,
            run_id,
            started_at=result.started_at,
            finished_at=result.finished_at,
            status="succeeded" if result.ok else "failed",
            failed_step=result.failed_step,
            error=result.error,
            steps=[o.as_dict() for o in result.steps],
        ),
    )
    return result


def default_steps(*, skip_publish: bool = False) -> list[Step]:
    """The state machine's steps, in its order."""
    steps = [
        Step("extract", _extract),
        Step("load", _load),
        Step("dbt", _dbt),
        Step("publish", _publish),
    ]
    return [s for s in steps if not (skip_publish and s.name == "publish")]


def _run_step(step: Step, context: CycleContext, inject: bool, log: logs.RunLogger) -> StepOutcome:
    report: StepReport | None = None
    error = ""
    with logs.Timer() as timer:
        try:
            if inject:
                raise InjectedFailure(
                    f"injected failure before {step.name} ({FAIL_STEP_ENV} test hook)"
                )
            report = step.run(context)
        except Exception as err:  # the one place a step's failure becomes an outcome
            error = f"{type(err).__name__}: {err}"
            log.exception("step failed", step=step.name, error=error)
    if report is None:
        return StepOutcome(step.name, "failed", timer.seconds, error=error)
    context.results[step.name] = report.result
    outcome = StepOutcome(
        step.name,
        "succeeded",
        timer.seconds,
        report.rows,
        report.files,
        report.models,
        report.tests,
        detail=report.detail,
    )
    log.info(
        "step succeeded",
        step=step.name,
        rows=outcome.rows,
        files=outcome.files,
        models=outcome.models,
        tests=outcome.tests,
        duration_s=outcome.duration_s,
    )
    return outcome


# ---- the steps ---------------------------------------------------------------------------------


def _extract(context: CycleContext) -> StepReport:
    result = run_extract(context.settings, run_id=context.run_id)
    return StepReport(
        rows=sum(t.rows for t in result.tables),
        files=sum(t.files for t in result.tables),
        detail={
            "seq": result.seq,
            "committed": result.committed,
            "bytes": sum(t.bytes for t in result.tables),
            "watermark_method": result.watermark_method,
        },
        result=result,
    )


def _load(context: CycleContext) -> StepReport:
    result = run_load(context.settings, run_id=context.run_id)
    return StepReport(
        rows=sum(result.rows.values()),
        detail={
            "manifests": result.loaded,
            "already_loaded": result.already_loaded,
            "bytes": result.bytes,
            "rows_by_table": result.rows,
        },
        result=result,
    )


def _dbt(context: CycleContext) -> StepReport:
    """`dbt build` of what the rows loaded since the last successful build reach
    (totes/dbt_build.py), unless it would change nothing: the project, the load ledger and the
    warehouse's relations are those of the newest successful build (totes/build_record.py).
    The docs site is generated only when it would differ from the one last published, and dbt's
    unit tests run only on a project no successful build was of yet."""
    settings = context.settings
    with _warehouse(settings) as conn:
        before = build_record.current_inputs(conn, dbt_build.PROJECT_DIR)
        newest = build_record.newest_build(conn)
    unchanged = newest.run_id if newest and newest.made_from(before) else None
    unit_tests = not (newest and newest.project == before.project)
    # A relation dbt wrote is gone or replaced, or the project is another: what arrived since
    # the last build says nothing about what this one must make.
    everything = unit_tests or newest is None or newest.relations != before.relations
    if unchanged:
        context.unchanged_since = unchanged
        # Quarantine alerts that could not be sent before are retried all the same.
        detail = {"unchanged_since": unchanged, **quarantine.after_build(settings, context.run_id)}
        return StepReport(models=0, tests=0, detail=detail)
    result = dbt_build.run_build(
        settings,
        context.work_dir / "dbt",
        runner=context.dbt_runner,
        docs=False,
        previous_target=context.previous_dbt_target,
        unit_tests=unit_tests,
        everything=everything,
    )
    quarantined = quarantine.after_build(settings, context.run_id)
    with _warehouse(settings) as conn:
        docs = build_record.docs_digest(conn, before.project)
        if context.dbt_docs and build_record.docs_published_with(conn, docs) is None:
            result = dbt_build.generate_docs(
                settings, context.work_dir / "dbt", result, runner=context.dbt_runner
            )
        after = replace(before, relations=build_record.relations_digest(conn), docs=docs)
        build_record.record_build(conn, context.run_id, after)
    return StepReport(
        models=result.models,
        tests=result.tests,
        detail={**result.summary(), **quarantined},
        result=result,
    )


def _publish(context: CycleContext) -> StepReport:
    settings = context.settings
    unchanged = context.unchanged_since
    if unchanged:
        with _warehouse(settings) as conn:
            done = build_record.marts_published(conn, unchanged)
        if done:  # the same marts, already published in full by an earlier cycle
            return StepReport(rows=0, files=0, detail={"unchanged_since": unchanged, "docs": 0})
    result = publish(settings, run_id=context.run_id)
    built = context.results.get("dbt")
    docs_keys: list[str] = []
    if getattr(built, "docs", None):  # generated by the dbt step: the site changed
        docs_keys = publish_docs(settings, built.target_dir, context.run_id)
    with _warehouse(settings) as conn:
        build = unchanged or (context.run_id if built is not None else None)
        if build:
            build_record.record_marts_published(conn, build)
        if docs_keys:
            build_record.record_docs_published(conn, context.run_id)
    return StepReport(
        rows=result.rows,
        files=result.files + len(docs_keys),
        detail={"tables": result.per_table(), "docs": len(docs_keys)},
        result=result,
    )


@contextmanager
def _warehouse(settings: Settings) -> Iterator[Any]:
    conn = settings.warehouse_connection()
    try:
        yield conn
    finally:
        conn.close()


def _previous_target(root: Path, run_id: str) -> Path | None:
    """The newest earlier run's dbt target under `root`, if any (its saved parse is reused)."""
    if not root.is_dir():
        return None
    earlier = sorted(
        p / "dbt" / "target"
        for p in root.iterdir()
        if p.name < run_id and (p / "dbt" / "target").is_dir()
    )
    return earlier[-1] if earlier else None


# ---- bookkeeping -------------------------------------------------------------------------------


def _record(settings: Settings, log: logs.RunLogger, write: Callable[[Any], None]) -> None:
    """Write to ops.cycle_runs; a warehouse that is down must not hide the step's own error."""
    try:
        conn = settings.warehouse_connection()
        try:
            ops.ensure_schema(conn)
            write(conn)
        finally:
            conn.close()
    except Exception as err:
        log.error("cannot record the cycle in ops.cycle_runs", error=f"{type(err).__name__}: {err}")


def _alert(settings: Settings, result: CycleResult, log: logs.RunLogger) -> None:
    alert = alerts.FailureAlert(
        run_id=result.run_id,
        failed_step=result.failed_step or "",
        error=result.error or "",
        started_at=result.started_at.isoformat(),
        steps=[o.as_dict() for o in result.steps],
    )
    try:
        message_id = alerts.send(settings, alert)
    except alerts.AlertError as err:
        log.error("alert not sent", step=result.failed_step, error=str(err))
        return
    log.info("alert sent", step=result.failed_step, message_id=message_id)


@contextmanager
def cycle_lock(settings: Settings, log: logs.RunLogger) -> Iterator[bool | None]:
    """Hold the cycle lock for the `with` block: True if taken, False if another cycle has it.
    Also taken by `totes load` on its own, so a manual load never changes raw under a cycle's dbt.

    None when the warehouse cannot be asked: the cycle runs unguarded, so its steps fail with
    the real error (recorded, alerted) rather than a cycle silently doing nothing.
    """
    try:
        conn = settings.warehouse_connection()
    except Exception as err:
        log.error("cannot take the cycle lock", error=f"{type(err).__name__}: {err}")
        yield None
        return
    taken: bool | None
    try:
        taken = ops.try_cycle_lock(conn)
    except Exception as err:
        log.error("cannot take the cycle lock", error=f"{type(err).__name__}: {err}")
        taken = None
    try:
        yield taken
    finally:
        with suppress(Exception):  # closing the session is what releases the lock
            conn.close()


@contextmanager
def _work_dir(root: Path | None, run_id: str) -> Iterator[Path]:
    """`root/<run_id>` kept for inspection (the newest few), or a temporary folder."""
    if root is None:
        with tempfile.TemporaryDirectory(prefix=f"totes-{run_id}-") as folder:
            yield Path(folder)
        return
    folder = root / run_id
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        for old in sorted(p for p in root.iterdir() if p.is_dir())[:-KEEP_RUN_DIRS]:
            shutil.rmtree(old, ignore_errors=True)
