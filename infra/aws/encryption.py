"""Encryption: one customer-managed KMS key, rotated yearly, for what the stack encrypts.

It encrypts the SNS alert topic, the secrets the stack creates, the five log groups and the
Lambdas' environments. The buckets stay on SSE-S3: S3 access logs can only be delivered to an
SSE-S3 bucket, and readers of the marts (Athena, notebooks) would all need the key otherwise.

Least privilege on the key. Its policy lets the account's IAM policies grant its use (the CDK
default: no role gets it by default) and CloudWatch Logs use it for this stage's log groups only
(`/totes/<stage>/*`, by the encryption context); CDK adds CloudWatch alarms (this account's,
`aws:SourceAccount`) publishing to the topic (alerting.py) and Secrets Manager use for the
secrets. Roles get it scoped by `kms:ViaService` to the one service that uses it for them:
Secrets Manager (the secrets they read) and SNS (the topic they publish to), stack.py. Lambda
decrypts the functions' environments through a grant it creates on deploy.
"""

from __future__ import annotations

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

# What the AWS services need to encrypt and read back their own data with the key.
LOGS_ACTIONS = [
    "kms:Encrypt*",
    "kms:Decrypt*",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:Describe*",
]
# Publishing to an SNS topic encrypted with the key (the publisher's side).
SNS_PUBLISH_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey*"]


class Encryption(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: str) -> None:
        super().__init__(scope, construct_id)
        self.log_group_prefix = f"/totes/{stage}/"
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/totes/{stage}",
            description=f"Terrific Totes ({stage}): alert topic, secrets, log groups, Lambda env",
            enable_key_rotation=True,
            # Retained like the secrets and log groups it encrypts: they are unreadable without it.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsForThisStagesLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=LOGS_ACTIONS,
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}"
                            f":log-group:{self.log_group_prefix}*"
                        )
                    }
                },
            )
        )

    def grant_sns_publish(self, grantee: iam.IGrantable) -> None:
        """What a publisher to the encrypted topic needs, through SNS only."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=SNS_PUBLISH_ACTIONS,
            resource_arns=[self.key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"sns.{Aws.REGION}.amazonaws.com"}},
        )
