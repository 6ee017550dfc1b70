"""After `dbt build`: count the quarantined row versions and alert once per new batch.

dbt keeps a row version that breaks a quarantine rule out of its fact and lists it in
`quarantine.quarantined_rows` (docs/WAREHOUSE.md, "Quarantine"). This module reads that model
after the cycle's dbt step, and when it holds unresolved versions no alert has named yet, sends
one SNS alert naming them (table, key, reason, file) and remembers them in
`ops.quarantine_alerts`, a table only this module writes. So each batch is alerted exactly
once, a batch whose alert could not be sent is alerted by the next cycle, and a version
resolved by its correction is never alerted again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pg8000.native

from runtime import logs
from runtime.config import Settings
from runtime.db import qualified, run_ddl_once
from totes import alerts

MODEL = qualified("quarantine", "quarantined_rows")
ALERTS_TABLE = qualified("ops", "quarantine_alerts")
ROWS_IN_ALERT = 50  # an alert names at most this many versions; the count is always exact
_DDL_LOCK = 7_412_013  # pg_advisory_xact_lock key for this module's DDL

_DDL = (
    "create schema if not exists ops",
    f"""
    create table if not exists {ALERTS_TABLE} (
        source_table text not null,
        version_id integer not null,
        run_id text not null,
        alerted_at timestamptz not null default now(),
        primary key (source_table, version_id)
    )
    """,
)


@dataclass(frozen=True)
class QuarantinedRow:
    """One unresolved entry of `quarantine.quarantined_rows`."""

    source_table: str
    version_id: int
    source_key: int | None
    last_updated: datetime | None
    reason: str
    manifest_seq: int
    source_file: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_table": self.source_table,
            "source_key": self.source_key,
            "last_updated": self.last_updated.isoformat() if self.last_updated else None,
            "reason": self.reason,
            "manifest_seq": self.manifest_seq,
            "source_file": self.source_file,
        }


@dataclass(frozen=True)
class QuarantineAlert:
    """Newly quarantined versions (`rows`, the first ROWS_IN_ALERT of `quarantined`)."""

    run_id: str
    quarantined: int
    unresolved: int
    rows: Sequence[QuarantinedRow]

    @property
    def subject(self) -> str:
        subject = f"totes: {self.quarantined} row version(s) quarantined (run {self.run_id})"
        return subject.encode("ascii", "replace").decode()[: alerts.SUBJECT_LIMIT]

    def message(self) -> str:
        return json.dumps(
            {
                "alert": "totes-rows-quarantined",
                "run_id": self.run_id,
                "quarantined": self.quarantined,
                "unresolved": self.unresolved,
                "rows": [row.as_dict() for row in self.rows[:ROWS_IN_ALERT]],
            },
            default=str,
        )


def after_build(settings: Settings, run_id: str) -> dict[str, int]:
    """The cycle's dbt step calls this after a successful build: alert on new quarantined
    versions; returns {"quarantined": unresolved versions, "quarantine_alerted": newly alerted}
    for the step's report (empty when the warehouse has no quarantine model, e.g. no build)."""
    log = logs.run_logger("totes.quarantine", run_id)
    conn = settings.warehouse_connection()
    try:
        if not conn.run("select to_regclass(:name) is not null", name=MODEL)[0][0]:
            return {}
        run_ddl_once(conn, _DDL_LOCK, _DDL)
        unresolved = unresolved_rows(conn)
        new = unalerted(conn, unresolved)
        if new:
            alert = QuarantineAlert(run_id, len(new), len(unresolved), new)
            try:
                message_id = send(settings, alert)
            except alerts.AlertError as err:  # remembered as not alerted: the next cycle retries
                log.error("quarantine alert not sent", quarantined=len(new), error=str(err))
                return {"quarantined": len(unresolved), "quarantine_alerted": 0}
            remember(conn, new, run_id)
            log.warning("row versions quarantined", quarantined=len(new), message_id=message_id)
        return {"quarantined": len(unresolved), "quarantine_alerted": len(new)}
    finally:
        conn.close()


def unresolved_rows(conn: pg8000.native.Connection) -> list[QuarantinedRow]:
    rows = conn.run(
        "select source_table, version_id, source_key, last_updated, reason, manifest_seq, "  # noqa: S608 (fixed, quoted names)
        f"source_file from {MODEL} where not resolved order by source_table, version_id"
    )
    return [QuarantinedRow(*row) for row in rows]


def unalerted(
    conn: pg8000.native.Connection, rows: Sequence[QuarantinedRow]
) -> list[QuarantinedRow]:
    """The rows no earlier alert named."""
    done = {
        (table, version)
        for table, version in conn.run(
            f"select source_table, version_id from {ALERTS_TABLE}"  # noqa: S608
        )
    }
    return [row for row in rows if (row.source_table, row.version_id) not in done]


def remember(conn: pg8000.native.Connection, rows: Sequence[QuarantinedRow], run_id: str) -> None:
    conn.run(
        f"insert into {ALERTS_TABLE} (source_table, version_id, run_id) "
        "select unnest(cast(:tables as text[])), unnest(cast(:versions as integer[])), :run_id "
        "on conflict do nothing",
        tables=[row.source_table for row in rows],
        versions=[row.version_id for row in rows],
        run_id=run_id,
    )


def send(settings: Settings, alert: QuarantineAlert, sns: Any = None) -> str:
    """Publish to the alert topic (as `alerts.send` does for failures); the SNS message id."""
    if not settings.alert_topic_arn:
        raise alerts.AlertError(f"no ALERT_TOPIC_ARN configured: cannot alert for {alert.run_id}")
    client = sns or settings.client("sns")
    try:
        response = client.publish(
            TopicArn=settings.alert_topic_arn, Subject=alert.subject, Message=alert.message()
        )
    except Exception as err:  # botocore's errors are many; all mean the alert is lost
        raise alerts.AlertError(
            f"cannot publish quarantine alert for run {alert.run_id}: {err}"
        ) from err
    return str(response["MessageId"])
