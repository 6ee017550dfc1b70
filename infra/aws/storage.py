"""Storage: the ingestion bucket (the lake), the processed bucket (marts, docs), Glue."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

GLUE_DATABASE = "totes_marts"
# Key prefixes (docs/CONTRACTS.md); IAM grants and lifecycle rules are scoped by them.
DATA_PREFIX = "totesys/"
MANIFEST_PREFIX = "_manifests/"
MARTS_PREFIX = "marts/"
DOCS_PREFIX = "docs/"


class Storage(Construct):
    """Two private, encrypted, TLS-only, versioned buckets that are never deleted with the stack."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)

        self.ingestion_bucket = _bucket(
            self,
            "IngestionBucket",
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


def _bucket(scope: Construct, construct_id: str, lifecycle_rules: list) -> s3.Bucket:
    return s3.Bucket(
        scope,
        construct_id,
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
