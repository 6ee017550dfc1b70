"""The Lambda handler and `totes extract` are thin edges over run_extract."""

from __future__ import annotations

import json
import subprocess
import sys

from ingest.handler import lambda_handler


def test_the_lambda_handler_returns_a_json_able_result(isolated, monkeypatch):
    for name, value in isolated.env().items():
        monkeypatch.setenv(name, value)
    result = lambda_handler({"run_id": "20261125T223000123456Z-abcdef12"}, None)
    assert json.loads(json.dumps(result))["run_id"] == "20261125T223000123456Z-abcdef12"
    assert (result["committed"], result["seq"]) == (True, 1)


def test_totes_extract_prints_a_summary_and_exits_zero(isolated):
    done = subprocess.run(
        [sys.executable, "-m", "totes.cli", "extract"],
        env=isolated.env(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "manifest 1 committed" in done.stderr


def test_totes_extract_fails_with_an_error_line_when_the_database_is_unreachable(
    isolated, tmp_path
):
    env = {**isolated.env(), "TOTESYS_DSN": f"postgresql://postgres@/x?host={tmp_path}"}
    done = subprocess.run(
        [sys.executable, "-m", "totes.cli", "extract"], env=env, capture_output=True, text=True
    )
    errors = [json.loads(line) for line in done.stdout.splitlines() if '"ERROR"' in line]
    assert done.returncode == 1
    assert errors and "cannot connect" in errors[0]["error"]
    assert "cannot connect" in done.stderr
