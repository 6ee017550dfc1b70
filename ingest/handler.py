"""AWS Lambda entry point for the extract step (the first state of the state machine)."""

from __future__ import annotations

import os
from typing import Any

from ingest.extract import ExtractOptions, run_extract
from runtime import logs
from runtime.config import Settings


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    logs.configure()
    run_id = event.get("run_id") if isinstance(event, dict) else None
    result = run_extract(
        Settings.from_env(),
        run_id=run_id if isinstance(run_id, str) else None,
        options=ExtractOptions.from_env(os.environ),
    )
    return result.to_dict()
