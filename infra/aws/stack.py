"""TotesPipelineStack: storage, secrets, compute, orchestration and alerting, and who may do what.

Every permission is granted here, in one place, through the CDK grant helpers, so the IAM
summary in infra/README.md can be checked against one method.
"""

from __future__ import annotations

from aws_cdk import Annotations, CfnOutput, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.aws.alerting import PIPELINE_NAMESPACE, Alerting
from infra.aws.compute import RETENTION, Compute, Network, pandas_layer_arn
from infra.aws.config import StackConfig, StackConfigError
from infra.aws.orchestration import Orchestration
from infra.aws.secrets import Secrets
from infra.aws.storage import (
    DATA_PREFIX,
    DOCS_PREFIX,
    MANIFEST_PREFIX,
    MARTS_PREFIX,
    Storage,
)

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

        self.storage = Storage(self, "Storage")
        self.secrets = Secrets(
            self,
            "Secrets",
            stage=config.stage,
            totesys_secret=config.totesys_secret,
            warehouse_secret=config.warehouse_secret,
        )
        self.alerting = Alerting(
            self,
            "Alerting",
            stage=config.stage,
            alert_email=config.alert_email,
            freshness_threshold_seconds=config.freshness_threshold_seconds,
        )
        self.network = self._network()

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
        )

        for step, function in self.compute.functions.items():
            self.alerting.watch_function(step, function, self.compute.log_groups[step])
        self.alerting.watch_state_machine(self.orchestration.state_machine)
        self.alerting.watch_build(self.compute.dbt_project)
        self.alerting.watch_schedule(self.orchestration.schedule)
        self.alerting.watch_freshness()

        self._grant()
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

        for grantee in (extract, load, publish, dbt):
            topic.grant_publish(grantee)
            # PutMetricData has no resource type: "*" scoped by a namespace condition.
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["cloudwatch:PutMetricData"],
                resource_arns=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": PIPELINE_NAMESPACE}},
            )

    def _network(self) -> Network | None:
        config = self.config
        if not config.vpc_id:
            return None
        vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "WarehouseVpc",
            vpc_id=config.vpc_id,
            availability_zones=self.availability_zones,
        )
        subnets = ec2.SubnetSelection(
            subnets=[
                ec2.Subnet.from_subnet_id(self, f"WarehouseSubnet{i}", subnet_id)
                for i, subnet_id in enumerate(config.subnet_ids)
            ]
        )
        if config.security_group_id:
            group = ec2.SecurityGroup.from_security_group_id(
                self, "PipelineSecurityGroup", config.security_group_id, mutable=False
            )
        else:
            group = ec2.SecurityGroup(
                self,
                "PipelineSecurityGroup",
                vpc=vpc,
                description="Totes pipeline Lambdas and CodeBuild: allow it on the databases port.",
                allow_all_outbound=True,
            )
            CfnOutput(self, "PipelineSecurityGroupId", value=group.security_group_id)
        return Network(vpc=vpc, subnets=subnets, security_groups=[group])

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
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
