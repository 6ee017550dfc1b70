"""AWS Lambda entry point for the publish step (the state machine's last state)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from publish.publish import publish
from runtime import logs
from runtime.config import Settings


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """`{"run_id": ...}` in, counts out."""
    logs.configure()
    run_id = event.get("run_id") if isinstance(event, Mapping) else None
    result = publish(Settings.from_env(), run_id=run_id if isinstance(run_id, str) else None)
    return {
        "run_id": result.run_id,
        "rows": result.rows,
        "files": result.files,
        "tables": result.per_table(),
    }
