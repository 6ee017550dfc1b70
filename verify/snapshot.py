"""A read-only snapshot that never gets in the business's way.

Every query of a verification runs inside one `REPEATABLE READ READ ONLY` transaction per
database: one consistent snapshot, and the server refuses any write in it (SQLSTATE 25006).
Plain SELECTs take only ACCESS SHARE locks, which conflict with nothing but ACCESS EXCLUSIVE
(DDL, VACUUM FULL): inserts, updates and deletes never wait for a verification. Bounds keep it
that way:

- `lock_timeout`: a verification that would wait behind someone's DDL gives up instead of
  queueing (a waiting lock request also makes later ones wait);
- `statement_timeout`: no query runs longer than the budget, so the snapshot (which holds back
  VACUUM's horizon) is short-lived;
- `idle_in_transaction_session_timeout`: a process that stops mid-verification (a frozen
  Lambda, a killed CLI) has its transaction ended by the server.

`DateStyle` is fixed so dates and timestamps have one text on both servers (verify.tables).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from runtime import db


@dataclass(frozen=True)
class Limits:
    statement_timeout_s: float = 300.0
    lock_timeout_s: float = 2.0
    idle_timeout_s: float = 120.0
    # Per sort or hash of this session only: the range fingerprints group a million rows, and
    # the warehouse sorts the facts' versions for their `*_current` views. Without it the sorts
    # spill to disk (measured: a third more CPU on 1.1 million rows).
    work_mem: str | None = "64MB"

    @property
    def socket_timeout_s(self) -> float:
        """How long the client waits for an answer: past the server's own limit, so a slow
        query ends with the server's clear error, not a client-side socket timeout."""
        return self.statement_timeout_s + 30.0


@contextmanager
def read_only_snapshot(conn: Any, limits: Limits | None = None) -> Iterator[Any]:
    """Run the block in a read-only REPEATABLE READ transaction on `conn`; always rolled back."""
    limits = limits or Limits()
    conn.run("start transaction isolation level repeatable read read only")
    try:
        settings = {
            "statement_timeout": f"{int(limits.statement_timeout_s * 1000)}ms",
            "lock_timeout": f"{int(limits.lock_timeout_s * 1000)}ms",
            "idle_in_transaction_session_timeout": f"{int(limits.idle_timeout_s * 1000)}ms",
            "DateStyle": "ISO, YMD",
            **({"work_mem": limits.work_mem} if limits.work_mem else {}),
        }
        for name, value in settings.items():
            # set_config(..., true) is SET LOCAL with a bound value: gone with the transaction.
            conn.run("select set_config(:name, :value, true)", name=name, value=value)
        yield conn
    finally:
        try:
            conn.run("rollback")
        except Exception:  # a timed-out or terminated session: closing it ends the transaction
            db.close(conn)
