"""Storage: the ingestion bucket (the lake), the processed bucket (marts, docs), Glue, and the
bucket both log their requests to (S3 server access logs)."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.aws.checks import skip_check
from runtime import lake

GLUE_DATABASE = "totes_marts"
# Key prefixes; IAM grants and lifecycle rules are scoped by them. The lake's come from its
# contract (runtime/lake.py), so the grants follow the keys the extract writes.
DATA_PREFIX = lake.DATA_PREFIX
MANIFEST_PREFIX = lake.MANIFEST_PREFIX
MILESTONE_PREFIX = lake.MILESTONE_PREFIX
MARTS_PREFIX = "marts/"
DOCS_PREFIX = "docs/"
# Where each bucket's access logs go in the access-log bucket.
ACCESS_LOG_PREFIXES = {"IngestionBucket": "ingestion/", "ProcessedBucket": "processed/"}
ACCESS_LOG_DAYS = 365


class Storage(Construct):
    """Private, encrypted, TLS-only, versioned buckets that are never deleted with the stack: the
    lake, the processed bucket, and the access-log bucket both log their requests to."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)

        # Every request to the two data buckets is logged here: who read or wrote which key.
        # SSE-S3, because S3 log delivery cannot write to a bucket encrypted with a KMS key.
        self.access_log_bucket = _bucket(
            self,
            "AccessLogBucket",
            lifecycle_rules=[
                *_common_rules(),
                s3.LifecycleRule(
                    id="expire-access-logs", expiration=Duration.days(ACCESS_LOG_DAYS)
                ),
            ],
        )
        skip_check(
            self.access_log_bucket,
            "CKV_AWS_18",
            "This is the access-log bucket the two data buckets log to; logging it too would "
            "need yet another bucket (or log into itself, a loop). S3 log delivery writes here "
            "only through its bucket policy (logging.s3.amazonaws.com, this account's buckets).",
        )

        self.ingestion_bucket = _bucket(
            self,
            "IngestionBucket",
            access_logs=self.access_log_bucket,
            lifecycle_rules=[
                *_common_rules(),
                # Only data files age into colder storage: manifests stay in Standard because
                # the extractor and loader read them on every run.
                s3.LifecycleRule(
                    id="age-data-files",
                    prefix=DATA_PREFIX,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(90),
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER,
                            transition_after=Duration.days(365),
                        ),
                    ],
                ),
            ],
        )
        self.processed_bucket = _bucket(
            self,
            "ProcessedBucket",
            access_logs=self.access_log_bucket,
            # The marts are queried (Athena, notebooks): they stay in Standard.
            lifecycle_rules=_common_rules(),
        )

        self.glue_database = glue.CfnDatabase(
            self,
            "MartsDatabase",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=GLUE_DATABASE,
                description="Terrific Totes star schema (dbt marts) published as Parquet.",
                location_uri=self.processed_bucket.s3_url_for_object(MARTS_PREFIX),
            ),
        )
        self.glue_database.apply_removal_policy(RemovalPolicy.RETAIN)
        self.glue_database_name = GLUE_DATABASE

    # ARNs the publish step's Glue permissions are scoped to.
    @property
    def glue_catalog_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}:catalog"

    @property
    def glue_database_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}:database/{GLUE_DATABASE}"

    @property
    def glue_tables_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}:table/{GLUE_DATABASE}/*"


def _bucket(
    scope: Construct,
    construct_id: str,
    lifecycle_rules: list,
    access_logs: s3.IBucket | None = None,
) -> s3.Bucket:
    return s3.Bucket(
        scope,
        construct_id,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=ACCESS_LOG_PREFIXES.get(construct_id) if access_logs else None,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycle_rules=lifecycle_rules,
        removal_policy=RemovalPolicy.RETAIN,
        auto_delete_objects=False,
    )


def _common_rules() -> list[s3.LifecycleRule]:
    return [
        s3.LifecycleRule(
            id="expire-noncurrent-versions",
            noncurrent_version_expiration=Duration.days(30),
            abort_incomplete_multipart_upload_after=Duration.days(7),
        ),
    ]
