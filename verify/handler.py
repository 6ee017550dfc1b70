"""AWS Lambda entry point for the scheduled verification (an EventBridge rule, hourly).

Drift publishes the cycle's failure alert (verify.alert) and returns normally: the alert is
the one email. A verification that cannot run (a database unreachable, a query timed out) or
an alert that cannot be sent raises, so the function's Errors alarm emails instead.

Drift is settled before it alerts (verify.verify.settle): the drifting tables are checked again
after the next cycle, up to VERIFY_SETTLE_SECONDS (default 600; the schedule runs a cycle every
5 minutes and the function may run 15), so a deletion made a minute before the check, which
the next cycle ships, is not an alert.
"""

from __future__ import annotations

import os
from typing import Any

from runtime import logs
from runtime.config import Settings
from verify import alert
from verify.verify import VerifyOptions, run_verify

DEFAULT_SETTLE_S = 600.0


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    logs.configure()
    settings = Settings.from_env()
    settle_s = float(os.environ.get("VERIFY_SETTLE_SECONDS") or DEFAULT_SETTLE_S)
    result = run_verify(settings, options=VerifyOptions(settle_s=settle_s))
    log = logs.run_logger("verify.handler", result.run_id)
    alerted = None
    if not result.ok:
        alerted = alert.send(settings, result, stage=os.environ.get("TOTES_STAGE"))
        log.info("drift alert sent", message_id=alerted)
    return {
        "run_id": result.run_id,
        "ok": result.ok,
        "drifting": [t.table for t in result.drifting],
        "alert_message_id": alerted,
        "duration_s": result.duration_s,
    }
