"""Configuration, read once from the environment, validated, then passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from runtime import db


class ConfigError(ValueError):
    """A required setting is missing or malformed."""


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
            return db.connect(db.read_secret(secret, self.client("secretsmanager")), **kwargs)
        upper = name.upper()
        raise ConfigError(f"set {upper}_DSN (local) or {upper}_SECRET_ARN (AWS)")
