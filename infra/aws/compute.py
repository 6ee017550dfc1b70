"""Compute: the extract, load and publish Lambdas and the CodeBuild project that runs dbt.

Code is packaged from this repository at synth time, offline:
- the Lambda asset is the repository root with an allow-list, so only `ingest/`,
  `lambda_loader/` and `totes/` ship (never `.venv`, `.totes` data, tests or infra);
- pure-Python dependencies (pg8000 and friends) come from `build/lambda-deps/python`, which
  `make lambda-deps` fills before a deploy; without it a placeholder layer keeps synth working
  and the stack carries a warning;
- pyarrow, pandas, boto3 and awswrangler come from the AWS SDK for pandas managed layer;
- CodeBuild gets the dbt project (and the scripts it runs) as a zipped S3 source asset.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from aws_cdk import Annotations, Aws, Duration, RemovalPolicy
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUILDSPEC = HERE / "buildspec.yml"
LAMBDA_DEPS = REPO_ROOT / "build" / "lambda-deps"
LAYER_PLACEHOLDER = HERE / "layer_placeholder"
PANDAS_LAYER_ACCOUNT = "336392948345"

_NEVER = [".*", "**/.*", "**/__pycache__", "**/__pycache__/**", "**/*.pyc", "**/.DS_Store"]
# Everything is excluded, then the runtime packages are let back in.
LAMBDA_ASSET_EXCLUDE = [
    "*",
    "!ingest",
    "!ingest/**",
    "!lambda_loader",
    "!lambda_loader/**",
    "!publish",
    "!publish/**",
    "!runtime",
    "!runtime/**",
    *_NEVER,
]
# What CodeBuild needs: the dbt project, the pins and the scripts the buildspec calls. Staged
# into a temporary folder first: CDK skips any source folder that holds its output directory
# (infra/ holds infra/aws/cdk.out), so the repository root cannot be the asset path here.
CODEBUILD_SOURCE = (
    "constraints.txt",
    "dbt_warehouse",
    "infra/aws/buildspec.yml",
    "infra/aws/codebuild",
)
CODEBUILD_SOURCE_IGNORE = ("target", "logs", "dbt_packages", "__pycache__", "*.pyc", ".*")

RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}
# The buildspec maps these environment variables to keys of the warehouse secret.
WAREHOUSE_SECRET_KEYS = {
    "WAREHOUSE_HOST": "host",
    "WAREHOUSE_PORT": "port",
    "WAREHOUSE_USER": "username",
    "WAREHOUSE_PASSWORD": "password",
    "WAREHOUSE_DB": "dbname",
}
SECRET_PLACEHOLDER = "${WAREHOUSE_SECRET_ARN}"


@dataclass(frozen=True)
class Network:
    """Where the warehouse lives; None of these when the databases are reachable publicly."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_groups: list[ec2.ISecurityGroup]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str
    description: str
    memory_mb: int
    timeout: Duration
    reserved_concurrency: int | None


FUNCTIONS = (
    FunctionSpec(
        "extract",
        "ingest.handler.lambda_handler",
        "Extract changed totesys rows to Parquet + a manifest in the ingestion bucket.",
        1024,
        Duration.minutes(10),
        1,
    ),
    FunctionSpec(
        "load",
        "lambda_loader.handler.lambda_handler",
        "COPY committed manifests' Parquet files into the warehouse raw tables.",
        1024,
        Duration.minutes(15),
        1,
    ),
    FunctionSpec(
        "publish",
        "publish.handler.lambda_handler",
        "Write the dbt marts as Parquet to the processed bucket and the Glue catalog.",
        1024,
        Duration.minutes(10),
        None,
    ),
)


class Compute(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        environments: dict[str, dict[str, str]],
        warehouse_secret_id: str,
        processed_bucket_name: str,
        network: Network | None,
        pandas_layer_arn: str,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_groups: dict[str, logs.LogGroup] = {}
        self.functions: dict[str, lambda_.Function] = {}

        code = lambda_.Code.from_asset(str(REPO_ROOT), exclude=LAMBDA_ASSET_EXCLUDE)
        layers = [
            lambda_.LayerVersion.from_layer_version_arn(self, "PandasLayer", pandas_layer_arn),
            self._deps_layer(),
        ]

        for spec in FUNCTIONS:
            log_group = logs.LogGroup(
                self,
                f"{spec.name.title()}Logs",
                log_group_name=f"/totes/{stage}/lambda/{spec.name}",
                retention=log_retention,
                removal_policy=RemovalPolicy.RETAIN,
            )
            function = lambda_.Function(
                self,
                f"{spec.name.title()}Function",
                description=spec.description,
                runtime=lambda_.Runtime.PYTHON_3_12,
                architecture=lambda_.Architecture.X86_64,
                handler=spec.handler,
                code=code,
                layers=layers,
                memory_size=spec.memory_mb,
                timeout=spec.timeout,
                reserved_concurrent_executions=spec.reserved_concurrency,
                environment={
                    **environments[spec.name],
                    "TOTES_STEP": spec.name,
                    "TOTES_STAGE": stage,
                },
                log_group=log_group,
                # The state machine retries; Lambda's own async retries would run a step twice.
                retry_attempts=0,
                tracing=lambda_.Tracing.ACTIVE,
                **_network_props(network),
            )
            self.log_groups[spec.name] = log_group
            self.functions[spec.name] = function

        self.extract = self.functions["extract"]
        self.load = self.functions["load"]
        self.publish = self.functions["publish"]

        self.build_log_group = logs.LogGroup(
            self,
            "DbtBuildLogs",
            log_group_name=f"/totes/{stage}/codebuild/dbt",
            retention=log_retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        with tempfile.TemporaryDirectory(prefix="totes-dbt-source-") as staging:
            # The asset is copied into the cloud assembly here, in its constructor.
            source = s3_assets.Asset(
                self, "DbtProjectSource", path=stage_codebuild_source(Path(staging))
            )
        self.dbt_project = codebuild.Project(
            self,
            "DbtBuild",
            description="dbt build, source freshness and docs for the Terrific Totes warehouse.",
            source=codebuild.Source.s3(bucket=source.bucket, path=source.s3_object_key),
            build_spec=codebuild.BuildSpec.from_object_to_yaml(load_buildspec(warehouse_secret_id)),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=codebuild.ComputeType.SMALL,
            ),
            environment_variables={
                "PROCESSED_BUCKET": codebuild.BuildEnvironmentVariable(value=processed_bucket_name),
                "TOTES_STAGE": codebuild.BuildEnvironmentVariable(value=stage),
            },
            timeout=Duration.minutes(20),
            queued_timeout=Duration.minutes(10),
            concurrent_build_limit=1,
            logging=codebuild.LoggingOptions(
                cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.build_log_group)
            ),
            **_codebuild_network_props(network),
        )

    def _deps_layer(self) -> lambda_.ILayerVersion:
        deps = LAMBDA_DEPS / "python"
        if deps.is_dir() and any(deps.iterdir()):
            path = LAMBDA_DEPS
            description = "pg8000 and its pure-Python dependencies (lambda-requirements.txt)"
        else:
            path = LAYER_PLACEHOLDER
            description = "PLACEHOLDER: run `make lambda-deps` before deploying"
            Annotations.of(self).add_warning_v2(
                "totes:lambda-deps-missing",
                "build/lambda-deps/python is empty: the dependency layer is a placeholder. "
                "Run `make lambda-deps` before `cdk deploy`.",
            )
        return lambda_.LayerVersion(
            self,
            "DepsLayer",
            code=lambda_.Code.from_asset(str(path), exclude=_NEVER),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description=description,
            removal_policy=RemovalPolicy.DESTROY,
        )


def stage_codebuild_source(staging: Path) -> str:
    """Copy what the CodeBuild project runs (CODEBUILD_SOURCE) into `staging`; return its path."""
    ignore = shutil.ignore_patterns(*CODEBUILD_SOURCE_IGNORE)
    for relative in CODEBUILD_SOURCE:
        source, target = REPO_ROOT / relative, staging / relative
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif relative != "dbt_warehouse":
            raise FileNotFoundError(f"CodeBuild source {source} is missing")
    return str(staging)


def load_buildspec(warehouse_secret_id: str) -> dict:
    """infra/aws/buildspec.yml with the warehouse secret's id put into `env.secrets-manager`."""
    spec = yaml.safe_load(BUILDSPEC.read_text())
    mapping = spec["env"]["secrets-manager"]
    if set(mapping) != set(WAREHOUSE_SECRET_KEYS):
        raise ValueError(
            f"{BUILDSPEC}: env.secrets-manager must map {sorted(WAREHOUSE_SECRET_KEYS)}"
        )
    for variable, key in WAREHOUSE_SECRET_KEYS.items():
        expected = f"{SECRET_PLACEHOLDER}:{key}"
        if mapping[variable] != expected:
            raise ValueError(f"{BUILDSPEC}: {variable} must be {expected!r}")
        mapping[variable] = f"{warehouse_secret_id}:{key}"
    return spec


def pandas_layer_arn(version: int, explicit_arn: str | None) -> str:
    if explicit_arn:
        return explicit_arn
    return (
        f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{PANDAS_LAYER_ACCOUNT}"
        f":layer:AWSSDKPandas-Python312:{version}"
    )


def _network_props(network: Network | None) -> dict:
    if network is None:
        return {}
    return {
        "vpc": network.vpc,
        "vpc_subnets": network.subnets,
        "security_groups": network.security_groups,
    }


def _codebuild_network_props(network: Network | None) -> dict:
    if network is None:
        return {}
    return {
        "vpc": network.vpc,
        "subnet_selection": network.subnets,
        "security_groups": network.security_groups,
    }
