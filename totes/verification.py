"""`totes run --verify`: after a successful cycle, verify the marts against totesys.

Drift is alerted as in AWS (verify.alert: the failed-cycle alert, step `verify`), so a local
`totes run --every 5m --verify` emails like the deployed pipeline does.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime import logs
from runtime.config import Settings
from verify import alert
from verify.verify import VerifyResult, run_verify


@dataclass(frozen=True)
class Verified:
    result: VerifyResult
    alert_id: str | None = None  # the SNS message id of the drift alert
    alert_error: str | None = None  # why the drift alert could not be sent


def after_cycle(settings: Settings, run_id: str) -> Verified:
    """Verify under the cycle's run id; alert on drift (a lost alert is reported, not raised)."""
    result = run_verify(settings, run_id=run_id)
    if result.ok:
        return Verified(result)
    log = logs.run_logger("totes.verification", run_id)
    try:
        message_id = alert.send(settings, result)
    except alert.AlertError as err:
        log.error("drift alert not sent", error=str(err))
        return Verified(result, alert_error=str(err))
    log.info("drift alert sent", message_id=message_id)
    return Verified(result, alert_id=message_id)
