"""The scheduled verification: a Lambda that runs `verify` (totesys against the marts), started
by an EventBridge rule every hour by default.

Drift publishes the failed-cycle alert to the alert topic (`failed_step: verify`, the handler's
own message); a verification that cannot run raises, and the function's Errors alarm, which
the stack adds with the other Lambdas' (Alerting.watch_function), emails instead. The function
reads both databases read-only: its role may read both secrets, publish to the topic and nothing
else, and its asset is the `verify` package and the runtime, like every step's.

How often: `-c verify_every_minutes=N` (or TOTES_VERIFY_EVERY_MINUTES), 5 to 1440, default 60.
What a verification costs is measured in BENCHMARKS.md (`totes verify`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.aws.checks import skip_check
from infra.aws.compute import FunctionSpec, step_function
from infra.aws.config import StackConfigError
from infra.aws.network import Network

HANDLER = "verify.handler.lambda_handler"
STEP = "verify"
DEFAULT_EVERY_MINUTES = 60
EVERY_MINUTES_RANGE = (5, 1440)
CONTEXT_KEY = "verify_every_minutes"
# One verification at a time (reserved concurrency 1): a slow one is never joined by the next.
SPEC = FunctionSpec(
    STEP,
    HANDLER,
    "Verify the marts against totesys (counts, keys, fingerprints); drift alerts like a failed "
    "cycle.",
    memory_mb=512,
    timeout=Duration.minutes(15),
    reserved_concurrency=1,
)


def every_minutes(node: object, environ: Mapping[str, str] | None = None) -> int:
    """The schedule's rate from CDK context or TOTES_VERIFY_EVERY_MINUTES (default hourly)."""
    env = os.environ if environ is None else environ
    value = node.try_get_context(CONTEXT_KEY)  # type: ignore[attr-defined]
    if value is None or str(value).strip() == "":
        value = env.get(f"TOTES_{CONTEXT_KEY.upper()}") or DEFAULT_EVERY_MINUTES
    try:
        minutes = int(str(value).strip())
    except ValueError:
        raise StackConfigError(f"{CONTEXT_KEY} must be a whole number, not {value!r}") from None
    low, high = EVERY_MINUTES_RANGE
    if not low <= minutes <= high:
        raise StackConfigError(f"{CONTEXT_KEY} must be between {low} and {high}, not {minutes}")
    return minutes


class VerifySchedule(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        environment: Mapping[str, str],
        layers: list[lambda_.ILayerVersion],
        network: Network | None,
        log_retention: logs.RetentionDays,
        key: kms.IKey,
        minutes: int = DEFAULT_EVERY_MINUTES,
    ) -> None:
        super().__init__(scope, construct_id)
        self.minutes = minutes
        self.log_group, self.function = step_function(
            self,
            SPEC,
            stage=stage,
            layers=layers,
            environment=environment,
            network=network,
            log_retention=log_retention,
            key=key,
        )
        skip_check(
            self.function,
            "CKV_AWS_116",
            "EventBridge starts this function asynchronously with an event that carries no "
            "data, and it never retries (retry_attempts=0): a failed run has nothing to replay. "
            "Its failure raises, and the function's Errors alarm emails the alert topic; the "
            "next scheduled run verifies again.",
        )
        if network is None:
            skip_check(
                self.function,
                "CKV_AWS_117",
                "This variant has no vpc_id: the databases are reached on their own endpoints "
                "over TLS (sslmode=require), so there is no VPC to run in. With vpc_id the "
                "function runs in the warehouse VPC's private subnets, and that variant passes.",
            )
        self.schedule = events.Rule(
            self,
            "VerifySchedule",
            description=f"Verify the marts against totesys every {minutes} minute(s).",
            schedule=events.Schedule.rate(Duration.minutes(minutes)),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    event=events.RuleTargetInput.from_object({"trigger": "verify-schedule"}),
                    retry_attempts=2,
                    max_event_age=Duration.minutes(min(minutes, 60)),
                )
            ],
        )

    def grant(
        self,
        *,
        totesys_secret: secretsmanager.ISecret,
        warehouse_secret: secretsmanager.ISecret,
        topic: sns.ITopic,
        grant_sns_key: Callable[[iam.IGrantable], None],
    ) -> None:
        """Read both databases' secrets and publish the alert: nothing in S3, nothing else.
        `grant_sns_key(grantee)`: the encryption key's use through SNS (Encryption)."""
        totesys_secret.grant_read(self.function)
        warehouse_secret.grant_read(self.function)
        # Not topic.grant_publish: it also grants the topic's key with no condition.
        iam.Grant.add_to_principal(
            grantee=self.function, actions=["sns:Publish"], resource_arns=[topic.topic_arn]
        )
        grant_sns_key(self.function)
