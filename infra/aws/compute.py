"""Compute: the extract, load and publish Lambdas and the CodeBuild project that runs dbt.

Code is packaged from this repository at synth time, offline:
- each Lambda has an asset of its own: the repository root with an allow-list of its step's
  package and `runtime/` (never another step, `totes/`, `infra/`, tests, `.venv` or caches);
- pure-Python dependencies (pg8000 and friends) come from `build/lambda-deps/python`, which
  `make lambda-deps` fills before a deploy; without it a placeholder layer keeps synth working
  and the stack carries a warning;
- pyarrow, pandas, boto3 and awswrangler come from the AWS SDK for pandas managed layer;
- CodeBuild gets the dbt project (and the scripts it runs) as a zipped S3 source asset; in a
  VPC it also gets the wheels of what its install phase installs (`make dbt-wheels` fills
  `build/dbt-wheels`), so pip never needs PyPI and the build needs no NAT gateway.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from aws_cdk import Annotations, Aws, Duration, RemovalPolicy
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.aws.checks import skip_check
from infra.aws.network import Network

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUILDSPEC = HERE / "buildspec.yml"
LAMBDA_DEPS = REPO_ROOT / "build" / "lambda-deps"
# The wheels of infra/aws/codebuild-wheels.txt (what run_dbt.sh install installs), CodeBuild's
# Linux and Python; the same relative path inside the CodeBuild source.
DBT_WHEELS = Path("build") / "dbt-wheels"
DBT_WHEELS_DIR = REPO_ROOT / DBT_WHEELS
LAYER_PLACEHOLDER = HERE / "layer_placeholder"
PANDAS_LAYER_ACCOUNT = "336392948345"

_NEVER = [".*", "**/.*", "**/__pycache__", "**/__pycache__/**", "**/*.pyc", "**/.DS_Store"]
# A step imports only the runtime (the import layers, checked by `make lint`), so that is all its
# Lambda needs besides the layers.
LAMBDA_SHARED_PACKAGES = ("runtime",)
# What CodeBuild needs: the dbt project, the pins and the scripts the buildspec calls. Staged
# into a temporary folder first: CDK skips any source folder that holds its output directory
# (infra/ holds infra/aws/cdk.out), so the repository root cannot be the asset path here.
CODEBUILD_SOURCE = (
    "constraints.txt",
    "dbt_warehouse",
    "infra/aws/buildspec.yml",
    "infra/aws/codebuild",
    "runtime",  # publish-docs runs `python -m publish.docs`
    "publish",
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
class FunctionSpec:
    name: str
    handler: str
    description: str
    memory_mb: int
    timeout: Duration
    reserved_concurrency: int | None

    @property
    def package(self) -> str:
        """The step's package: the handler's top-level module (its asset holds it)."""
        return self.handler.split(".")[0]


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
        # One at a time, like the others: it follows the dbt build, which CodeBuild already
        # runs one at a time, so a second publish waits (the state machine retries throttles).
        1,
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
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_groups: dict[str, logs.LogGroup] = {}
        self.functions: dict[str, lambda_.Function] = {}

        layers = [
            lambda_.LayerVersion.from_layer_version_arn(self, "PandasLayer", pandas_layer_arn),
            self._deps_layer(),
        ]
        self.layers = layers  # the verify Lambda (infra/aws/verify.py) runs on the same layers

        for spec in FUNCTIONS:
            log_group, function = step_function(
                self,
                spec,
                stage=stage,
                layers=layers,
                environment=environments[spec.name],
                network=network,
                log_retention=log_retention,
                key=key,
            )
            self.log_groups[spec.name] = log_group
            self.functions[spec.name] = function
            skip_check(
                function,
                "CKV_AWS_116",
                "Only the state machine invokes this function, synchronously (RequestResponse); "
                "a dead-letter queue only ever receives failed asynchronous events. A failure "
                "is the state machine's: its catch publishes the alert and fails the execution "
                "(the ExecutionsFailed alarm), and the function's Errors alarm fires too.",
            )
            if network is None:
                skip_check(
                    function,
                    "CKV_AWS_117",
                    "This variant has no vpc_id: the databases are reached on their own "
                    "endpoints over TLS (sslmode=require), so there is no VPC to run in. With "
                    "vpc_id the function runs in the warehouse VPC's private subnets, and the "
                    "VPC variant passes this check.",
                )

        self.extract = self.functions["extract"]
        self.load = self.functions["load"]
        self.publish = self.functions["publish"]

        self.build_log_group = logs.LogGroup(
            self,
            "DbtBuildLogs",
            log_group_name=f"/totes/{stage}/codebuild/dbt",
            retention=log_retention,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        offline_install: dict[str, codebuild.BuildEnvironmentVariable] = {}
        with tempfile.TemporaryDirectory(prefix="totes-dbt-source-") as staging:
            path = stage_codebuild_source(Path(staging))
            if network is not None and self._stage_dbt_wheels(Path(staging), network):
                # pip reads these: install from the wheels only. run_dbt.sh runs in the source
                # root, so the relative path finds them.
                offline_install = {
                    "PIP_NO_INDEX": codebuild.BuildEnvironmentVariable(value="1"),
                    "PIP_FIND_LINKS": codebuild.BuildEnvironmentVariable(value=str(DBT_WHEELS)),
                }
            # The asset is copied into the cloud assembly here, in its constructor.
            source = s3_assets.Asset(self, "DbtProjectSource", path=path)
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
                **offline_install,
            },
            timeout=Duration.minutes(20),
            queued_timeout=Duration.minutes(10),
            concurrent_build_limit=1,
            logging=codebuild.LoggingOptions(
                cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.build_log_group)
            ),
            **_codebuild_network_props(network),
        )

    def _stage_dbt_wheels(self, staging: Path, network: Network) -> bool:
        """Copy build/dbt-wheels into the CodeBuild source; False (with a warning when the
        stack's endpoints say there is no NAT) when `make dbt-wheels` has not filled it."""
        if DBT_WHEELS_DIR.is_dir() and any(DBT_WHEELS_DIR.glob("*.whl")):
            shutil.copytree(DBT_WHEELS_DIR, staging / DBT_WHEELS)
            return True
        if network.endpoints:
            Annotations.of(self).add_warning_v2(
                "totes:dbt-wheels-missing",
                "build/dbt-wheels is empty: CodeBuild would install dbt from PyPI, which a VPC "
                "without a NAT gateway cannot reach. Run `make dbt-wheels` before `cdk deploy`.",
            )
        return False

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


def lambda_asset_exclude(step_package: str) -> list[str]:
    """Everything is excluded, then the step's package and the runtime are let back in."""
    allowed = (step_package, *LAMBDA_SHARED_PACKAGES)
    let_back = [pattern for p in allowed for pattern in (f"!{p}", f"!{p}/**")]
    # Notes for readers (a step's README) are not code.
    return ["*", *let_back, *_NEVER, "**/*.md"]


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


def step_function(
    scope: Construct,
    spec: FunctionSpec,
    *,
    stage: str,
    layers: list[lambda_.ILayerVersion],
    environment: Mapping[str, str],
    network: Network | None,
    log_retention: logs.RetentionDays,
    key: kms.IKey,
) -> tuple[logs.LogGroup, lambda_.Function]:
    """A step's Lambda (its package and the runtime, on the shared layers) and its log group,
    `<Name>Logs` and `<Name>Function` in `scope`: the three steps here, verify (verify.py)."""
    log_group = logs.LogGroup(
        scope,
        f"{spec.name.title()}Logs",
        log_group_name=f"/totes/{stage}/lambda/{spec.name}",
        retention=log_retention,
        encryption_key=key,
        removal_policy=RemovalPolicy.RETAIN,
    )
    function = lambda_.Function(
        scope,
        f"{spec.name.title()}Function",
        description=spec.description,
        runtime=lambda_.Runtime.PYTHON_3_12,
        architecture=lambda_.Architecture.X86_64,
        handler=spec.handler,
        code=lambda_.Code.from_asset(str(REPO_ROOT), exclude=lambda_asset_exclude(spec.package)),
        layers=layers,
        memory_size=spec.memory_mb,
        timeout=spec.timeout,
        reserved_concurrent_executions=spec.reserved_concurrency,
        environment={**environment, "TOTES_STEP": spec.name, "TOTES_STAGE": stage},
        # Lambda decrypts it for the execution role through a KMS grant of its own.
        environment_encryption=key,
        log_group=log_group,
        # Never Lambda's own async retries: the state machine retries a step (a retry here
        # would run it twice), and a failed verification raises and waits for its next run.
        retry_attempts=0,
        tracing=lambda_.Tracing.ACTIVE,
        **_network_props(network),
    )
    return log_group, function


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
