"""JSON-lines logging with a run id: one line per event, on stdout (CloudWatch in Lambda)."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def new_run_id() -> str:
    """A run id that sorts by time: 20261125T223000123456Z-1a2b3c4d."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: int = logging.INFO, stream: Any = None) -> None:
    """Route every logger of the project's packages to JSON lines."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    for name in ("runtime", "ingest", "lambda_loader", "publish", "verify", "totes", "infra"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


class RunLogger(logging.LoggerAdapter):
    """A logger that stamps every line with the run id and any fixed context."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        extra.update(kwargs.pop("extra", None) or {})
        extra.update(
            {k: kwargs.pop(k) for k in list(kwargs) if k not in ("exc_info", "stack_info")}
        )
        kwargs["extra"] = extra
        return msg, kwargs


def run_logger(name: str, run_id: str, **context: Any) -> RunLogger:
    return RunLogger(logging.getLogger(name), {"run_id": run_id, **context})


class Timer:
    """Measures a block: `with Timer() as t: ...; t.seconds`."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(time.perf_counter() - self.start, 3)
