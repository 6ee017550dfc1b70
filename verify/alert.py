"""Drift alerts: the same SNS alert a failed cycle sends, with `verify` as the failed step.

Subscribers (the email, a queue, a filter policy) need no second rule: the message has the
fields of the state machine's cycle alert (`alert: totes-cycle-failed`, `stage`,
`execution_id`, `failed_step`, `error`, `cause`, `summary`, `started_at`) and of the local
cycle's (`run_id`, `steps`), plus `tables`: what differs, per table, with example keys.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.config import Settings
from verify.verify import VerifyResult

ALERT = "totes-cycle-failed"
STEP = "verify"
ERROR = "Drift"
SUBJECT_LIMIT = 100  # SNS refuses longer subjects
CAUSE_LIMIT = 4000  # characters of the one-line description kept in `cause`


class AlertError(RuntimeError):
    """The drift alert could not be sent."""


def subject(result: VerifyResult) -> str:
    text = f"totes pipeline failed at {STEP} (run {result.run_id})"
    return text.encode("ascii", "replace").decode()[:SUBJECT_LIMIT]


def message(result: VerifyResult, *, stage: str | None = None) -> str:
    drifting = [t.as_dict() for t in result.drifting]
    names = ", ".join(t.table for t in result.drifting)
    return json.dumps(
        {
            "alert": ALERT,
            "stage": stage,
            "run_id": result.run_id,
            "execution_id": result.run_id,
            "failed_step": STEP,
            "error": ERROR,
            "cause": result.describe()[:CAUSE_LIMIT],
            "summary": f"Step {STEP} of run {result.run_id} failed: {ERROR} in {names}",
            "started_at": result.started_at.isoformat(),
            "steps": [{"step": STEP, "status": "failed", "detail": {"tables": drifting}}],
            "tables": drifting,
        },
        default=str,
    )


def send(
    settings: Settings, result: VerifyResult, *, stage: str | None = None, sns: Any = None
) -> str:
    """Publish the drift alert to `settings.alert_topic_arn`; returns the SNS message id."""
    if not settings.alert_topic_arn:
        raise AlertError(f"no ALERT_TOPIC_ARN configured: cannot alert drift of {result.run_id}")
    client = sns or settings.client("sns")
    try:
        response = client.publish(
            TopicArn=settings.alert_topic_arn,
            Subject=subject(result),
            Message=message(result, stage=stage),
        )
    except Exception as err:  # botocore's errors are many; all mean the alert is lost
        raise AlertError(
            f"cannot publish the drift alert of {result.run_id} to {settings.alert_topic_arn}: "
            f"{err}"
        ) from err
    return str(response["MessageId"])
