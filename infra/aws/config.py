"""The stack's settings, read once from CDK context (`-c key=value`) or the environment.

Every key is optional for `cdk synth`; `alert_email` must be a real address for a deploy
(the placeholder synthesises, with a warning, so tests and CI need no configuration).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

PLACEHOLDER_EMAIL = "alerts@example.com"
# AWS SDK for pandas (awswrangler) managed layer. The version number differs by region and
# release: check it with `aws lambda list-layer-versions --layer-name
# arn:aws:lambda:<region>:336392948345:layer:AWSSDKPandas-Python312` and pass
# `-c pandas_layer_version=N` (or the whole `-c pandas_layer_arn=...`).
DEFAULT_PANDAS_LAYER_VERSION = 27


class StackConfigError(ValueError):
    """A context value is malformed."""


@dataclass(frozen=True)
class StackConfig:
    stage: str = "dev"
    alert_email: str = PLACEHOLDER_EMAIL
    schedule_minutes: int = 5
    # Existing secrets: a full ARN, or a name. When absent the stack creates the secret.
    totesys_secret: str | None = None
    warehouse_secret: str | None = None
    # The warehouse's network: when vpc_id is set, the Lambdas and CodeBuild run inside it.
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_id: str | None = None
    # With vpc_id, the stack creates the VPC endpoints the pipeline needs (no NAT gateway); the
    # S3 gateway endpoint goes into these route tables (the private subnets').
    vpc_endpoints: bool = True
    route_table_ids: tuple[str, ...] = ()
    # The pipeline's group may reach these ports only (on these groups when given), and HTTPS
    # only to the endpoints (and S3's prefix list when given).
    database_ports: tuple[int, ...] = (5432,)
    database_security_group_ids: tuple[str, ...] = ()
    s3_prefix_list_id: str | None = None
    pandas_layer_version: int = DEFAULT_PANDAS_LAYER_VERSION
    pandas_layer_arn: str | None = None
    log_retention_days: int = 30
    freshness_threshold_seconds: int = 1800

    @property
    def has_placeholder_email(self) -> bool:
        return self.alert_email == PLACEHOLDER_EMAIL

    @classmethod
    def from_context(cls, node: Any, environ: dict[str, str] | None = None) -> StackConfig:
        """Read `node.try_get_context(key)`, falling back to TOTES_<KEY> environment variables."""
        env = dict(os.environ if environ is None else environ)

        def get(key: str) -> str | None:
            value = node.try_get_context(key)
            if value is None:
                value = env.get(f"TOTES_{key.upper()}")
            if value is None or str(value).strip() == "":
                return None
            return str(value).strip()

        config = cls(
            stage=get("stage") or cls.stage,
            alert_email=get("alert_email") or PLACEHOLDER_EMAIL,
            schedule_minutes=_int(
                get("schedule_minutes"), cls.schedule_minutes, "schedule_minutes"
            ),
            totesys_secret=get("totesys_secret"),
            warehouse_secret=get("warehouse_secret"),
            vpc_id=get("vpc_id"),
            subnet_ids=_list(get("subnet_ids")),
            security_group_id=get("security_group_id"),
            vpc_endpoints=_bool(get("vpc_endpoints"), cls.vpc_endpoints, "vpc_endpoints"),
            route_table_ids=_list(get("route_table_ids")),
            database_ports=tuple(
                _int(port, 0, "database_ports") for port in _list(get("database_ports"))
            )
            or cls.database_ports,
            database_security_group_ids=_list(get("database_security_group_ids")),
            s3_prefix_list_id=get("s3_prefix_list_id"),
            pandas_layer_version=_int(
                get("pandas_layer_version"), cls.pandas_layer_version, "pandas_layer_version"
            ),
            pandas_layer_arn=get("pandas_layer_arn"),
            log_retention_days=_int(
                get("log_retention_days"), cls.log_retention_days, "log_retention_days"
            ),
        )
        config.validate()
        return config

    def validate(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,15}", self.stage):
            raise StackConfigError(f"stage {self.stage!r}: use 1-16 lower-case letters, digits, -")
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.alert_email):
            raise StackConfigError(f"alert_email {self.alert_email!r} is not an email address")
        if not 1 <= self.schedule_minutes <= 30:
            # The marts must be fresh within 30 minutes; a slower schedule cannot meet that.
            raise StackConfigError("schedule_minutes must be between 1 and 30")
        if self.vpc_id and not self.subnet_ids:
            raise StackConfigError("vpc_id needs subnet_ids (comma-separated private subnets)")
        if self.subnet_ids and not self.vpc_id:
            raise StackConfigError("subnet_ids needs vpc_id")
        if self.vpc_id and self.vpc_endpoints and not self.route_table_ids:
            # The S3 gateway endpoint is a route in these tables; without it S3 needs a NAT.
            raise StackConfigError(
                "vpc_id needs route_table_ids (the private subnets' route tables) for the S3 "
                "gateway endpoint, or vpc_endpoints=false when the VPC already has endpoints"
            )
        if not all(0 < port < 65536 for port in self.database_ports):
            raise StackConfigError("database_ports must be TCP ports (1-65535)")


def _list(value: str | None) -> tuple[str, ...]:
    """A comma-separated context value as a tuple (empty items dropped)."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _bool(value: str | None, default: bool, key: str) -> bool:
    if value is None:
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise StackConfigError(f"{key} must be true or false, not {value!r}")


def _int(value: str | None, default: int, key: str) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise StackConfigError(f"{key} must be an integer, not {value!r}") from None
