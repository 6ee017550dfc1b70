"""The `totes` command line is defined in one place, and the cycle under it prints nothing."""

from __future__ import annotations

import argparse
import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import logs
from runtime.config import Settings
from totes import cli, cycle

SUBCOMMANDS = [
    *("up", "down", "env"),  # the local stack
    *("seed", "simulate"),  # the totesys stand-in
    *("extract", "load", "run", "status", "test", "verify", "report"),
]
TOTES = str(Path(sys.executable).with_name("totes"))
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("runtime", "ingest", "lambda_loader", "publish", "totes", "infra")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The JSON log lines, in a buffer; the loggers are put back as they were afterwards."""
    loggers = [logging.getLogger(name) for name in PACKAGES]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    stream = io.StringIO()
    logs.configure(stream=stream)
    yield stream
    for logger, handlers, level, propagate in saved:
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def test_the_parser_has_exactly_the_documented_subcommands():
    [sub] = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(sub.choices) == SUBCOMMANDS


def test_totes_help_lists_every_subcommand():
    done = subprocess.run([TOTES, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^ {4}(\w+)", done.stdout, re.MULTILINE)  # one line per subcommand
    assert listed == SUBCOMMANDS


def test_a_cycle_prints_nothing_but_json_log_lines(capsys, log_lines, tmp_path):
    def counted(context: cycle.CycleContext) -> cycle.StepReport:
        return cycle.StepReport(rows=3, files=1)

    steps = [cycle.Step("first", counted), cycle.Step("second", counted)]
    # No warehouse and no alert topic: the cycle only logs that it cannot record or alert.
    settings = Settings(ingestion_bucket="unused")
    result = cycle.run_cycle(settings, steps=steps, fail_step="second", work_dir=tmp_path)

    assert result.failed_step == "second"
    assert capsys.readouterr() == ("", "")
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert {line["message"] for line in lines} >= {"cycle started", "step failed", "cycle failed"}
    assert "print(" not in (ROOT / "totes" / "cycle.py").read_text()


def test_the_steps_hold_no_command_line_code():
    for step in ("ingest", "lambda_loader"):
        for path in (ROOT / step).rglob("*.py"):
            assert "argparse" not in path.read_text(), path
