"""AWS Lambda entry point. Step Functions (after an extract) and the S3 event of a manifest
landing both mean the same thing: load everything pending, oldest first."""

from __future__ import annotations

from typing import Any

from lambda_loader.load import run_load
from runtime import logs
from runtime.config import Settings


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    logs.configure()
    run_id = event.get("run_id") if isinstance(event, dict) else None
    result = run_load(Settings.from_env(), run_id=run_id if isinstance(run_id, str) else None)
    return result.as_dict()
