"""Failures are loud: a clear exception and an ERROR log line; a lost race is not a failure."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from ingest.extract import run_extract
from runtime import logs
from runtime.db import ConnectionConfigError, DatabaseUnavailableError


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    logs.configure(stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.configure()


def errors(lines):
    return [line for line in lines if line["level"] == "ERROR"]


def test_a_malformed_secret_fails_with_a_clear_error_and_an_error_line(isolated, log_lines):
    secrets = isolated.settings.client("secretsmanager")
    arn = secrets.create_secret(Name=f"totesys-{uuid.uuid4().hex[:8]}", SecretString="{not json")[
        "ARN"
    ]
    settings = isolated.settings.with_(totesys_dsn=None, totesys_secret_arn=arn)
    with pytest.raises(ConnectionConfigError, match="is not JSON"):
        run_extract(settings)
    [line] = errors(log_lines())
    assert line["message"] == "extract failed" and "is not JSON" in line["error"]


def test_an_unreachable_database_fails_with_a_clear_error_and_an_error_line(
    isolated, log_lines, tmp_path
):
    nowhere = f"postgresql://postgres@/totesys?host={tmp_path}&port=5432"
    with pytest.raises(DatabaseUnavailableError, match="cannot connect"):
        run_extract(isolated.settings.with_(totesys_dsn=nowhere))
    [line] = errors(log_lines())
    assert "cannot connect" in line["error"] and line["run_id"]


def test_an_unusable_metrics_endpoint_is_a_warning_not_a_failure(isolated, log_lines):
    class BrokenCloudWatch:
        def put_metric_data(self, **_):
            raise ConnectionError("metrics endpoint down")

    result = run_extract(isolated.settings, cloudwatch=BrokenCloudWatch())
    assert result.committed
    warnings = [line for line in log_lines() if line["level"] == "WARNING"]
    assert any("metrics endpoint down" in line.get("error", "") for line in warnings)
