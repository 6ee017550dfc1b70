"""Failure alerts: one SNS message per failed cycle (email subscribers in AWS, SQS in tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runtime.config import Settings

SUBJECT_LIMIT = 100  # SNS rejects longer subjects


class AlertError(RuntimeError):
    """The alert could not be sent (the topic is missing or unreachable)."""


@dataclass(frozen=True)
class FailureAlert:
    run_id: str
    failed_step: str
    error: str
    started_at: str
    steps: list[dict[str, Any]]

    @property
    def subject(self) -> str:
        subject = f"totes pipeline failed at {self.failed_step} (run {self.run_id})"
        return subject.encode("ascii", "replace").decode()[:SUBJECT_LIMIT]

    def message(self) -> str:
        return json.dumps(
            {
                "alert": "totes-cycle-failed",
                "run_id": self.run_id,
                "failed_step": self.failed_step,
                "error": self.error,
                "started_at": self.started_at,
                "steps": self.steps,
            },
            default=str,
        )


def send(settings: Settings, alert: FailureAlert, sns: Any = None) -> str:
    """Publish the alert to `settings.alert_topic_arn`; returns the SNS message id."""
    if not settings.alert_topic_arn:
        raise AlertError(f"no ALERT_TOPIC_ARN configured: cannot alert for run {alert.run_id}")
    client = sns or settings.client("sns")
    try:
        response = client.publish(
            TopicArn=settings.alert_topic_arn, Subject=alert.subject, Message=alert.message()
        )
    except Exception as err:  # botocore's errors are many; all mean the alert is lost
        raise AlertError(
            f"cannot publish alert for run {alert.run_id} to {settings.alert_topic_arn}: {err}"
        ) from err
    return str(response["MessageId"])
