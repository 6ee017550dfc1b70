"""Configuration, read once from the environment, validated, then passed down.

Database credentials in AWS come from Secrets Manager. A `Settings` (one per Lambda invocation,
that is one per cycle: the handlers build it from the environment) reads each secret once and
keeps what logged in for its later connections, so a step's parallel connections cost one read.
A login the database refuses (28P01, 28000) is never retried with what is kept: the secret is
read again, and when the database refuses that too and a rotation is in flight, its AWSPENDING
version is tried (a single-user rotation sets the new password in the database before it
labels it AWSCURRENT). Nothing that failed to log in is kept, so the next cycle, or the next
connection, reads the secret afresh. tests/runtime/test_secret_rotation.py proves it on the
local stack.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runtime import db

# Secrets Manager's label for the version a rotation is putting in place.
PENDING = "AWSPENDING"


class ConfigError(ValueError):
    """A required setting is missing or malformed."""


class _SecretCache:
    """Secret id -> the connection parameters that last logged in; safe across threads (the
    extract opens one connection per slice in parallel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._params: dict[str, db.ConnectionParams] = {}

    def get(self, secret_id: str) -> db.ConnectionParams | None:
        with self._lock:
            return self._params.get(secret_id)

    def keep(self, secret_id: str, params: db.ConnectionParams) -> None:
        with self._lock:
            self._params[secret_id] = params

    def forget(self, secret_id: str, params: db.ConnectionParams) -> None:
        """Drop `params` (another thread may already have kept newer ones)."""
        with self._lock:
            if self._params.get(secret_id) == params:
                del self._params[secret_id]


@dataclass(frozen=True)
class Settings:
    """Where the pipeline reads and writes. DSNs locally, Secrets Manager ARNs in AWS."""

    ingestion_bucket: str
    processed_bucket: str = ""
    totesys_dsn: str | None = None
    totesys_secret_arn: str | None = None
    warehouse_dsn: str | None = None
    warehouse_secret_arn: str | None = None
    alert_topic_arn: str | None = None
    glue_database: str = "totes_marts"
    aws_endpoint_url: str | None = None
    region: str = "eu-west-2"
    # Connection parameters read from a secret that logged in; per Settings (see above).
    _secrets: _SecretCache = field(
        default_factory=_SecretCache, init=False, repr=False, compare=False
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        bucket = env.get("INGESTION_BUCKET", "")
        if not bucket:
            raise ConfigError('INGESTION_BUCKET is not set (locally: eval "$(totes env)")')
        return cls(
            ingestion_bucket=bucket,
            processed_bucket=env.get("PROCESSED_BUCKET", ""),
            totesys_dsn=env.get("TOTESYS_DSN") or None,
            totesys_secret_arn=env.get("TOTESYS_SECRET_ARN") or None,
            warehouse_dsn=env.get("WAREHOUSE_DSN") or None,
            warehouse_secret_arn=env.get("WAREHOUSE_SECRET_ARN") or None,
            alert_topic_arn=env.get("ALERT_TOPIC_ARN") or None,
            glue_database=env.get("GLUE_DATABASE") or "totes_marts",
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "eu-west-2",
        )

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def client(self, service: str) -> Any:
        import boto3

        # A session per client: boto3's default session is not safe to share across threads.
        session = boto3.session.Session(region_name=self.region)
        return session.client(service, endpoint_url=self.aws_endpoint_url)

    def totesys_connection(self, **kwargs: Any) -> Any:
        return self._connect("totesys", self.totesys_dsn, self.totesys_secret_arn, **kwargs)

    def warehouse_connection(self, **kwargs: Any) -> Any:
        return self._connect("warehouse", self.warehouse_dsn, self.warehouse_secret_arn, **kwargs)

    def _connect(self, name: str, dsn: str | None, secret: str | None, **kwargs: Any) -> Any:
        if dsn:
            return db.connect(dsn, **kwargs)
        if secret:
            return self._connect_with_secret(secret, **kwargs)
        upper = name.upper()
        raise ConfigError(f"set {upper}_DSN (local) or {upper}_SECRET_ARN (AWS)")

    def _connect_with_secret(self, secret_id: str, **kwargs: Any) -> Any:
        kept = self._secrets.get(secret_id)
        if kept is not None:
            try:
                return db.connect(kept, **kwargs)
            except db.DatabaseUnavailableError as err:
                if not err.login_refused:
                    raise
                # Rotated since it was read: forget it, read the secret again below.
                self._secrets.forget(secret_id, kept)
        client = self.client("secretsmanager")
        current = db.read_secret(secret_id, client)
        try:
            conn = db.connect(current, **kwargs)
        except db.DatabaseUnavailableError as refused:
            if not refused.login_refused:
                raise
            conn, current = self._connect_pending(secret_id, client, current, refused, **kwargs)
        self._secrets.keep(secret_id, current)
        return conn

    def _connect_pending(
        self,
        secret_id: str,
        client: Any,
        current: db.ConnectionParams,
        refused: db.DatabaseUnavailableError,
        **kwargs: Any,
    ) -> tuple[Any, db.ConnectionParams]:
        """Mid-rotation, the database may already hold AWSPENDING's password; else `refused`."""
        try:
            pending = db.read_secret(secret_id, client, version_stage=PENDING)
        except db.ConnectionConfigError:
            raise refused from None  # no rotation in flight: the secret is simply wrong
        if pending == current:
            raise refused
        return db.connect(pending, **kwargs), pending
