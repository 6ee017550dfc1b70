"""TotesPipelineStack: storage, secrets, compute, orchestration and alerting, and who may do what.

Every permission is granted here, in one place, through the CDK grant helpers, so the IAM
summary and the threat model in infra/README.md can be checked against one method.
"""

from __future__ import annotations

from aws_cdk import Annotations, CfnOutput, Stack, Tags
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.aws.alerting import PIPELINE_NAMESPACE, Alerting
from infra.aws.checks import skip_check
from infra.aws.compute import RETENTION, Compute, pandas_layer_arn
from infra.aws.config import StackConfig, StackConfigError
from infra.aws.encryption import Encryption
from infra.aws.network import build_network
from infra.aws.orchestration import Orchestration
from infra.aws.secrets import Secrets
from infra.aws.storage import (
    DATA_PREFIX,
    DOCS_PREFIX,
    MANIFEST_PREFIX,
    MARTS_PREFIX,
    MILESTONE_PREFIX,
    Storage,
)
from infra.aws.verify import VerifySchedule
from infra.aws.verify import every_minutes as verify_every_minutes

GLUE_PUBLISH_ACTIONS = [
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
    "glue:CreatePartition",
    "glue:BatchCreatePartition",
]
# What reading the published marts needs from the catalog (Athena, awswrangler, notebooks).
GLUE_READ_ACTIONS = [
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
]


class TotesPipelineStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        Tags.of(self).add("project", "terrific-totes")
        Tags.of(self).add("stage", config.stage)
        if config.has_placeholder_email:
            Annotations.of(self).add_warning_v2(
                "totes:placeholder-alert-email",
                "alert_email is the placeholder: pass -c alert_email=you@example.org to deploy.",
            )
        if config.log_retention_days not in RETENTION:
            raise StackConfigError(f"log_retention_days must be one of {sorted(RETENTION)}")
        retention = RETENTION[config.log_retention_days]

        self.encryption = Encryption(self, "Encryption", stage=config.stage)
        key = self.encryption.key
        self.storage = Storage(self, "Storage")
        self.secrets = Secrets(
            self,
            "Secrets",
            stage=config.stage,
            totesys_secret=config.totesys_secret,
            warehouse_secret=config.warehouse_secret,
            key=key,
        )
        self.alerting = Alerting(
            self,
            "Alerting",
            stage=config.stage,
            alert_email=config.alert_email,
            key=key,
            freshness_threshold_seconds=config.freshness_threshold_seconds,
        )
        self.network = build_network(self, config)

        ingestion = self.storage.ingestion_bucket
        processed = self.storage.processed_bucket
        common = {
            "INGESTION_BUCKET": ingestion.bucket_name,
            "PROCESSED_BUCKET": processed.bucket_name,
            "ALERT_TOPIC_ARN": self.alerting.topic.topic_arn,
            "GLUE_DATABASE": self.storage.glue_database_name,
            "METRICS_NAMESPACE": PIPELINE_NAMESPACE,
        }
        self.compute = Compute(
            self,
            "Compute",
            stage=config.stage,
            environments={
                "extract": {**common, "TOTESYS_SECRET_ARN": self.secrets.totesys.secret_id},
                "load": {**common, "WAREHOUSE_SECRET_ARN": self.secrets.warehouse.secret_id},
                "publish": {**common, "WAREHOUSE_SECRET_ARN": self.secrets.warehouse.secret_id},
            },
            warehouse_secret_id=self.secrets.warehouse.secret_id,
            processed_bucket_name=processed.bucket_name,
            network=self.network,
            pandas_layer_arn=pandas_layer_arn(config.pandas_layer_version, config.pandas_layer_arn),
            log_retention=retention,
            key=key,
        )
        self.orchestration = Orchestration(
            self,
            "Orchestration",
            stage=config.stage,
            extract=self.compute.extract,
            load=self.compute.load,
            publish=self.compute.publish,
            dbt_project=self.compute.dbt_project,
            topic=self.alerting.topic,
            schedule_minutes=config.schedule_minutes,
            log_retention=retention,
            key=key,
        )

        # The scheduled verification (hourly by default) reads both databases read-only.
        self.verify = VerifySchedule(
            self,
            "Verify",
            stage=config.stage,
            environment={
                **common,
                "TOTESYS_SECRET_ARN": self.secrets.totesys.secret_id,
                "WAREHOUSE_SECRET_ARN": self.secrets.warehouse.secret_id,
            },
            layers=self.compute.layers,
            network=self.network,
            log_retention=retention,
            key=key,
            minutes=verify_every_minutes(self.node),
        )

        for step, function in self.compute.functions.items():
            self.alerting.watch_function(step, function, self.compute.log_groups[step])
        self.alerting.watch_function("verify", self.verify.function, self.verify.log_group)
        self.alerting.watch_state_machine(self.orchestration.state_machine)
        self.alerting.watch_build(self.compute.dbt_project)
        self.alerting.watch_schedule(self.orchestration.schedule)
        self.alerting.watch_freshness()

        self._grant()
        self.analysts_policy = self._analysts_policy()
        self._skip_cdk_written_checks()
        self._outputs()

    def _grant(self) -> None:
        """Least privilege: each role gets exactly what its step does, nothing deletes data."""
        ingestion = self.storage.ingestion_bucket
        processed = self.storage.processed_bucket
        extract, load, publish = self.compute.extract, self.compute.load, self.compute.publish
        dbt = self.compute.dbt_project
        topic = self.alerting.topic

        # extract: reads totesys, reads the lake (manifests, last watermark), adds files to it.
        self.secrets.totesys.secret.grant_read(extract)
        ingestion.grant_read(extract)
        ingestion.grant_put(extract, f"{DATA_PREFIX}*")
        ingestion.grant_put(extract, f"{MANIFEST_PREFIX}*")
        ingestion.grant_put(extract, f"{MILESTONE_PREFIX}*")  # the listing hints after commits
        # load: reads the lake, writes the warehouse.
        ingestion.grant_read(load)
        self.secrets.warehouse.secret.grant_read(load)
        # publish: reads the warehouse marts, writes Parquet under marts/ and the Glue tables.
        self.secrets.warehouse.secret.grant_read(publish)
        processed.grant_read(publish, f"{MARTS_PREFIX}*")
        processed.grant_put(publish, f"{MARTS_PREFIX}*")
        iam.Grant.add_to_principal(
            grantee=publish,
            actions=GLUE_PUBLISH_ACTIONS,
            resource_arns=[
                self.storage.glue_catalog_arn,
                self.storage.glue_database_arn,
                self.storage.glue_tables_arn,
            ],
        )
        # dbt in CodeBuild: reads the warehouse secret (buildspec env), writes the docs site.
        self.secrets.warehouse.secret.grant_read(dbt)
        processed.grant_put(dbt, f"{DOCS_PREFIX}*")

        # verify: reads both databases' secrets, publishes the drift alert; nothing in S3.
        self.verify.grant(
            totesys_secret=self.secrets.totesys.secret,
            warehouse_secret=self.secrets.warehouse.secret,
            topic=topic,
            grant_sns_key=self.encryption.grant_sns_publish,
        )

        # The state machine's alert task publishes to the encrypted topic (its sns:Publish is
        # the task's own statement; the key is not).
        self.encryption.grant_sns_publish(self.orchestration.state_machine)
        for grantee in (extract, load, publish, dbt):
            # Not topic.grant_publish: it also grants the topic's key with no condition.
            iam.Grant.add_to_principal(
                grantee=grantee, actions=["sns:Publish"], resource_arns=[topic.topic_arn]
            )
            self.encryption.grant_sns_publish(grantee)
            # PutMetricData has no resource type: "*" scoped by a namespace condition.
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["cloudwatch:PutMetricData"],
                resource_arns=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": PIPELINE_NAMESPACE}},
            )

    def _analysts_policy(self) -> iam.ManagedPolicy:
        """Analysts read the marts and nothing else: attach this to their roles (the stack
        attaches it to no one; querying through Athena also needs the workgroup's own rights)."""
        processed = self.storage.processed_bucket
        return iam.ManagedPolicy(
            self,
            "AnalystsReadMarts",
            description="Read the published marts only: Parquet under marts/, their Glue tables.",
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[processed.arn_for_objects(f"{MARTS_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[processed.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{MARTS_PREFIX}*"]}},
                ),
                iam.PolicyStatement(
                    actions=GLUE_READ_ACTIONS,
                    resources=[
                        self.storage.glue_catalog_arn,
                        self.storage.glue_database_arn,
                        self.storage.glue_tables_arn,
                    ],
                ),
            ],
        )

    def _skip_cdk_written_checks(self) -> None:
        """Checks that fail on a statement CDK writes, not on a choice of this stack."""
        if self.network is not None:
            # CDK adds this policy to a CodeBuild project in a VPC.
            (policy,) = [
                child
                for child in self.compute.dbt_project.node.children
                if isinstance(child, iam.Policy)
            ]
            skip_check(
                policy,
                "CKV_AWS_111",
                "The statement CDK writes for a CodeBuild project in a VPC (AWS's documented "
                "service-role policy for VPC builds): CodeBuild creates and deletes the build's "
                "network interface in the project's subnets before any interface ARN exists, "
                "and the ec2:Describe* calls have no resource type; it grants no data access.",
            )

    def _outputs(self) -> None:
        outputs = {
            "IngestionBucketName": self.storage.ingestion_bucket.bucket_name,
            "ProcessedBucketName": self.storage.processed_bucket.bucket_name,
            "AlertTopicArn": self.alerting.topic.topic_arn,
            "StateMachineArn": self.orchestration.state_machine.state_machine_arn,
            "DbtProjectName": self.compute.dbt_project.project_name,
            "TotesysSecretId": self.secrets.totesys.secret_id,
            "WarehouseSecretId": self.secrets.warehouse.secret_id,
            "GlueDatabaseName": self.storage.glue_database_name,
            "AnalystsPolicyArn": self.analysts_policy.managed_policy_arn,
            "KeyArn": self.encryption.key.key_arn,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
