"""The AWS stack (infra/aws), synthesised offline: the properties that matter, and cfn-lint.

The app is synthesised once per worker (tests/infra/conftest.py: defaults; a configured
deployment with a VPC, its own security group and existing secrets; the private variant, whose
endpoints and security groups tests/infra/test_infra_security.py checks); every test reads those
templates.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Match
from support.cdk_template import CONFIGURED, Synth
from support.cdk_template import actions as _actions
from support.cdk_template import flatten as _flatten
from support.cdk_template import role_of as _role_of

from infra.aws.config import StackConfig, StackConfigError
from infra.aws.orchestration import GUARD
from infra.aws.verify import HANDLER as VERIFY_HANDLER

# The session fixtures `default` and `configured` (tests/infra/conftest.py) are built once per
# worker for every module of this group.
pytestmark = pytest.mark.xdist_group(name="infra-aws")

REPO = Path(__file__).resolve().parents[2]
RUN_DBT = REPO / "infra" / "aws" / "codebuild" / "run_dbt.sh"
BUILDSPEC = REPO / "infra" / "aws" / "buildspec.yml"
# Actions that have no resource-level permissions, so "*" is the only possible resource.
STAR_RESOURCE_ALLOWED = {
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    # CodeBuild in a VPC (the CDK-written, AWS-documented statement for VPC builds).
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
}
# cfn-lint W3005: CDK adds DependsOn on a Lambda's role next to the GetAtt of the same role.
CFN_LINT_IGNORED = ["W3005"]


def _asset_dir(synth: Synth, reference: object) -> Path:
    """The staged folder of the asset a template property (an S3 key or location) points at."""
    asset_hash = re.search(r"([0-9a-f]{64})[^\"]*\.zip", json.dumps(reference)).group(1)
    # CDK takes a dot in the source folder's name for an extension (a checkout in
    # /tmp/tmp.Ab12Cd is staged as asset.<hash>.Ab12Cd), so match the hash, not the whole name.
    (staged,) = [p for p in synth.outdir.glob(f"asset.{asset_hash}*") if p.is_dir()]
    return staged


def _topic_ref(synth: Synth) -> dict:
    return {"Ref": synth.one("AWS::SNS::Topic")[0]}


# --- storage -------------------------------------------------------------------------------


def test_every_bucket_is_private_encrypted_versioned_and_retained(default: Synth):
    buckets = default.resources("AWS::S3::Bucket")
    assert len(buckets) == 3  # ingestion, processed, and the access logs of both
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert bucket["DeletionPolicy"] == "Retain"
        assert bucket["UpdateReplacePolicy"] == "Retain"


def test_bucket_policies_deny_every_request_without_tls(default: Synth):
    policies = default.resources("AWS::S3::BucketPolicy")
    assert {p["Properties"]["Bucket"]["Ref"] for p in policies.values()} == set(
        default.resources("AWS::S3::Bucket")
    )
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny"
            and s["Action"] == "s3:*"
            and s["Principal"] == {"AWS": "*"}
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_lifecycle_expires_old_versions_and_ages_only_ingested_data_files(default: Synth):
    rules_by_bucket = {
        k: r["Properties"]["LifecycleConfiguration"]["Rules"]
        for k, r in default.resources("AWS::S3::Bucket").items()
    }
    ingestion = next(k for k in rules_by_bucket if "Ingestion" in k)
    for rules in rules_by_bucket.values():
        assert any(r.get("NoncurrentVersionExpiration") == {"NoncurrentDays": 30} for r in rules)
        assert all(r["Status"] == "Enabled" for r in rules)
    (aging,) = [r for r in rules_by_bucket[ingestion] if r.get("Transitions")]
    assert aging["Prefix"] == "totesys/"  # manifests stay in Standard: every run reads them
    assert aging["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": 90},
        {"StorageClass": "GLACIER", "TransitionInDays": 365},
    ]
    processed = next(k for k in rules_by_bucket if "Processed" in k)
    assert not any(r.get("Transitions") for r in rules_by_bucket[processed])


def test_glue_database_for_the_marts(default: Synth):
    default.template.has_resource_properties(
        "AWS::Glue::Database",
        {"DatabaseInput": Match.object_like({"Name": "totes_marts"})},
    )


# --- secrets -------------------------------------------------------------------------------


def test_created_secrets_generate_the_password_from_a_template(default: Synth):
    secrets = default.resources("AWS::SecretsManager::Secret")
    assert len(secrets) == 2
    for secret in secrets.values():
        props = secret["Properties"]
        assert "SecretString" not in props
        generate = props["GenerateSecretString"]
        assert generate["GenerateStringKey"] == "password"
        template = json.loads(generate["SecretStringTemplate"])
        assert {"host", "port", "username", "dbname"} <= set(template)
        assert "password" not in template


def test_existing_secrets_are_referenced_not_created(configured: Synth):
    assert configured.resources("AWS::SecretsManager::Secret") == {}
    _, extract = configured.function("ingest.handler.lambda_handler")
    env = extract["Properties"]["Environment"]["Variables"]
    assert env["TOTESYS_SECRET_ARN"] == CONFIGURED["totesys_secret"]
    _, load = configured.function("lambda_loader.handler.lambda_handler")
    env = load["Properties"]["Environment"]["Variables"]
    assert env["WAREHOUSE_SECRET_ARN"] == CONFIGURED["warehouse_secret"]


def test_no_password_or_key_is_written_into_the_template(default: Synth, configured: Synth):
    for synth in (default, configured):
        text = json.dumps(synth.json)
        assert not re.search(r'"(password|Password|SecretString)"\s*:\s*"', text)
        assert "AKIA" not in text


# --- compute -------------------------------------------------------------------------------


HANDLERS = {
    "ingest.handler.lambda_handler": (1024, 600, 1),
    "lambda_loader.handler.lambda_handler": (1024, 900, 1),
    "publish.handler.lambda_handler": (1024, 600, 1),
}


@pytest.mark.parametrize("handler", sorted(HANDLERS))
def test_lambdas_run_python_312_sized_and_configured(default: Synth, handler: str):
    memory, timeout, reserved = HANDLERS[handler]
    _, function = default.function(handler)
    props = function["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["MemorySize"] == memory
    assert props["Timeout"] == timeout
    assert props.get("ReservedConcurrentExecutions") == reserved
    env = props["Environment"]["Variables"]
    assert {"INGESTION_BUCKET", "PROCESSED_BUCKET", "ALERT_TOPIC_ARN", "GLUE_DATABASE"} <= set(env)
    assert "LogGroup" in props["LoggingConfig"]
    layers = json.dumps(props["Layers"])
    assert "336392948345:layer:AWSSDKPandas-Python312:" in layers


def test_each_lambda_names_only_the_secret_it_uses(default: Synth):
    env = {h: default.function(h)[1]["Properties"]["Environment"]["Variables"] for h in HANDLERS}
    assert "TOTESYS_SECRET_ARN" in env["ingest.handler.lambda_handler"]
    assert "WAREHOUSE_SECRET_ARN" not in env["ingest.handler.lambda_handler"]
    for handler in ("lambda_loader.handler.lambda_handler", "publish.handler.lambda_handler"):
        assert "WAREHOUSE_SECRET_ARN" in env[handler]
        assert "TOTESYS_SECRET_ARN" not in env[handler]


def test_log_groups_have_a_retention(default: Synth):
    groups = default.resources("AWS::Logs::LogGroup")
    assert len(groups) == 6  # four Lambdas (the three steps, verify), CodeBuild, the state machine
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 30


# Never in a Lambda's code: the operator's CLI, the report and its notebook, infra, caches.
NEVER_SHIPPED = {"cli.py", "report", "infra", "totes", "tests", "__pycache__"}


@pytest.mark.parametrize("handler", sorted(HANDLERS))
def test_each_lambda_ships_its_step_and_the_runtime_only(default: Synth, handler: str):
    step = handler.split(".")[0]
    _, function = default.function(handler)
    asset = _asset_dir(default, function["Properties"]["Code"]["S3Key"])
    assert {p.name for p in asset.iterdir()} == {step, "runtime"}
    shipped = list(asset.rglob("*"))
    # All of the step's and the runtime's modules: the allow-list drops nothing they run.
    modules = {p.relative_to(REPO) for d in (step, "runtime") for p in (REPO / d).rglob("*.py")}
    assert modules <= {p.relative_to(asset) for p in shipped}
    assert not [p for p in shipped if p.name in NEVER_SHIPPED or p.suffix in (".ipynb", ".pyc")]
    assert not [p for p in shipped if p.name.startswith(".")]


def test_codebuild_runs_dbt_build_freshness_and_docs(default: Synth):
    _, project = default.one("AWS::CodeBuild::Project")
    buildspec = _flatten(project["Properties"]["Source"]["BuildSpec"])
    commands = re.findall(r"run_dbt\.sh ([a-z-]+)", buildspec)
    assert commands == ["install", "debug", "build", "freshness", "docs", "publish-docs"]
    assert "python: 3.12" in buildspec
    for variable, key in {"WAREHOUSE_HOST": "host", "WAREHOUSE_PASSWORD": "password"}.items():
        assert f"{variable}: TOKEN:{key}" in buildspec
    script = RUN_DBT.read_text()
    for dbt_command in ("dbt_cmd build", "dbt_cmd source freshness", "dbt_cmd docs generate"):
        assert dbt_command in script
    assert '--project-dir "$PROJECT_DIR" --profiles-dir "$PROFILES_DIR"' in script
    assert project["Properties"]["Environment"]["Image"] == "aws/codebuild/standard:7.0"


def test_codebuild_source_holds_the_dbt_project_and_its_scripts(default: Synth):
    _, project = default.one("AWS::CodeBuild::Project")
    source = _asset_dir(default, project["Properties"]["Source"]["Location"])
    assert (source / "infra/aws/codebuild/run_dbt.sh").is_file()
    assert (source / "infra/aws/buildspec.yml").is_file()
    assert (source / "constraints.txt").is_file()
    assert not (source / ".venv").exists()


def test_buildspec_file_keeps_the_secret_placeholder():
    text = BUILDSPEC.read_text()
    assert "${WAREHOUSE_SECRET_ARN}:host" in text
    assert "run_dbt.sh build" in text


def test_run_dbt_script_fails_clearly_without_configuration(tmp_path: Path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(RUN_DBT), "build"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "missing environment: WAREHOUSE_HOST" in result.stdout
    usage = subprocess.run(["bash", str(RUN_DBT)], env=env, capture_output=True, check=False)
    assert usage.returncode == 2


def test_configured_network_puts_compute_in_the_warehouse_vpc(configured: Synth):
    subnets = CONFIGURED["subnet_ids"].split(",")
    for _, function in configured.resources("AWS::Lambda::Function").items():
        vpc = function["Properties"]["VpcConfig"]
        assert vpc["SubnetIds"] == subnets
        assert vpc["SecurityGroupIds"] == [CONFIGURED["security_group_id"]]
    _, project = configured.one("AWS::CodeBuild::Project")
    assert project["Properties"]["VpcConfig"]["Subnets"] == subnets
    assert "arn:aws:lambda:TOKEN:336392948345:layer:AWSSDKPandas-Python312:99" in _flatten(
        configured.function("publish.handler.lambda_handler")[1]["Properties"]["Layers"][0]
    ).replace("arn:TOKEN", "arn:aws")


# --- orchestration -------------------------------------------------------------------------


def test_every_task_retries_and_every_failure_alerts_then_fails(default: Synth):
    states = default.state_machine_definition()["States"]
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    (alert,) = [n for n, s in tasks.items() if ":states:::sns:publish" in s["Resource"]]
    steps = {n: s for n, s in tasks.items() if n != alert}
    # The guard (one cycle at a time: tests/infra/test_orchestration.py) is a task too.
    assert set(steps) == {GUARD, "Extract", "Load", "dbt build", "Publish"}

    def leads_to_alert(name: str) -> bool:
        state = states[name]
        return name == alert or (state["Type"] == "Pass" and leads_to_alert(state["Next"]))

    for name, state in steps.items():
        assert state.get("Retry"), f"{name} has no retry"
        catch_all = [c for c in state["Catch"] if c["ErrorEquals"] == ["States.ALL"]]
        assert len(catch_all) == 1, f"{name} has no catch-all"
        assert leads_to_alert(catch_all[0]["Next"]), f"{name}'s catch does not alert"
        # The Pass state between the catch and the alert records which step failed.
        assert states[catch_all[0]["Next"]]["Result"] == name
    assert tasks[alert]["Retry"]
    assert states[tasks[alert]["Next"]]["Type"] == "Fail"
    assert states[tasks[alert]["Catch"][0]["Next"]]["Type"] == "Fail"


def test_lambda_steps_retry_transient_errors_with_backoff(default: Synth):
    states = default.state_machine_definition()["States"]
    for name in ("Extract", "Load", "Publish"):
        retried = {e for r in states[name]["Retry"] for e in r["ErrorEquals"]}
        assert {
            "Lambda.ServiceException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
            "States.Timeout",
        } <= retried
        assert all(r.get("BackoffRate", 1) >= 1 for r in states[name]["Retry"])
        assert any(r.get("BackoffRate", 1) > 1 for r in states[name]["Retry"])


def test_the_cycle_is_extract_load_dbt_publish(default: Synth):
    definition = default.state_machine_definition()
    states = definition["States"]
    order, name = [], definition["StartAt"]
    while states[name]["Type"] in ("Task", "Choice"):
        order.append(name)
        # A Choice's default is the way on (the guard's: "alone, so run the cycle").
        name = states[name]["Next" if states[name]["Type"] == "Task" else "Default"]
    assert order == [GUARD, "Alone?", "Extract", "Load", "dbt build", "Publish"]
    assert states["dbt build"]["Resource"].endswith(":states:::codebuild:startBuild.sync")
    assert definition["TimeoutSeconds"] == 25 * 60


def test_alert_message_names_execution_step_and_error(default: Synth):
    states = default.state_machine_definition()["States"]
    (alert,) = [s for s in states.values() if ":states:::sns:publish" in s.get("Resource", "")]
    params = alert["Parameters"]
    assert params["TopicArn"] == "TOKEN"
    message = params["Message"]
    assert message["execution_id.$"] == "$$.Execution.Id"
    assert message["failed_step.$"] == "$.failed_step"
    assert message["error.$"] == "$.error.Error"
    assert message["summary.$"].startswith("States.Format(")
    assert params["Subject.$"].startswith("States.Format(")


def test_state_machine_logs_to_a_log_group(default: Synth):
    default.template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": Match.object_like(
                {"Level": "ALL", "Destinations": Match.any_value()}
            ),
            "TracingConfiguration": {"Enabled": True},
        },
    )


def _cycle_schedule(synth: Synth) -> dict:
    """The rule that starts the state machine (the other one starts the verify Lambda)."""
    machine = synth.one("AWS::StepFunctions::StateMachine")[0]
    (rule,) = [
        r
        for r in synth.resources("AWS::Events::Rule").values()
        if any(t["Arn"] == {"Ref": machine} for t in r["Properties"]["Targets"])
    ]
    return rule


def test_schedule_starts_the_state_machine_every_five_minutes(default: Synth):
    rule = _cycle_schedule(default)
    props = rule["Properties"]
    assert props["ScheduleExpression"] == "rate(5 minutes)"
    assert props["State"] == "ENABLED"
    (target,) = props["Targets"]
    machine = default.one("AWS::StepFunctions::StateMachine")[0]
    assert target["Arn"] == {"Ref": machine}


def test_schedule_rate_comes_from_context(configured: Synth):
    rule = _cycle_schedule(configured)
    assert rule["Properties"]["ScheduleExpression"] == "rate(10 minutes)"


# --- alerting ------------------------------------------------------------------------------


def test_alerts_reach_the_configured_email(default: Synth, configured: Synth):
    for synth, email in ((default, "alerts@example.com"), (configured, CONFIGURED["alert_email"])):
        synth.template.has_resource_properties(
            "AWS::SNS::Subscription",
            {"Protocol": "email", "Endpoint": email, "TopicArn": _topic_ref(synth)},
        )


def test_topic_policy_enforces_tls_and_lets_cloudwatch_alarms_publish(default: Synth):
    _, policy = default.one("AWS::SNS::TopicPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    assert any(
        s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        for s in statements
    )


def test_every_alarm_notifies_the_topic(default: Synth):
    alarms = default.resources("AWS::CloudWatch::Alarm")
    assert alarms
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [_topic_ref(default)], name


def test_alarms_cover_every_failure_path(default: Synth):
    alarms = [a["Properties"] for a in default.resources("AWS::CloudWatch::Alarm").values()]
    by_metric: dict[tuple[str, str], list[dict]] = {}
    for alarm in alarms:
        by_metric.setdefault((alarm["Namespace"], alarm["MetricName"]), []).append(alarm)

    lambda_errors = by_metric[("AWS/Lambda", "Errors")]
    assert len(lambda_errors) == 4  # the three steps and verify
    assert all(
        a["Threshold"] == 1 and a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        for a in lambda_errors
    )
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
        assert len(by_metric[("AWS/States", metric)]) == 1
    assert len(by_metric[("AWS/CodeBuild", "FailedBuilds")]) == 1
    assert len(by_metric[("AWS/Events", "FailedInvocations")]) == 1
    log_alarms = [a for (ns, _), items in by_metric.items() if ns == "Totes/Logs" for a in items]
    assert len(log_alarms) == 4

    freshness = by_metric[("Totes/Pipeline", "FreshnessLagSeconds")]
    lag = next(a for a in freshness if a["Statistic"] == "Maximum")
    assert lag["Threshold"] == 1800
    assert lag["ComparisonOperator"] == "GreaterThanThreshold"
    silent = next(a for a in freshness if a["Statistic"] == "SampleCount")
    assert silent["TreatMissingData"] == "breaching"
    assert silent["Period"] * silent["EvaluationPeriods"] == 1800


def test_error_log_lines_feed_metric_filters(default: Synth):
    filters = default.resources("AWS::Logs::MetricFilter")
    assert len(filters) == 4
    lambda_groups = {
        f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        for f in default.resources("AWS::Lambda::Function").values()
    }
    assert {f["Properties"]["LogGroupName"]["Ref"] for f in filters.values()} == lambda_groups
    for metric_filter in filters.values():
        assert metric_filter["Properties"]["FilterPattern"] == '{ $.level = "ERROR" }'


# --- IAM -----------------------------------------------------------------------------------


def test_no_wildcard_actions_and_no_star_resources_on_data(default: Synth, configured: Synth):
    for synth in (default, configured):
        for role, statements in synth.statements_by_role().items():
            for statement in statements:
                for action in _actions(statement):
                    assert action != "*" and not action.endswith(":*"), (role, action)
                if statement["Resource"] == "*":
                    assert set(_actions(statement)) <= STAR_RESOURCE_ALLOWED, (role, statement)
        for role in synth.resources("AWS::IAM::Role").values():
            assert "Policies" not in role["Properties"]  # inline policies bypass the grants


def test_put_metric_data_is_limited_to_the_pipeline_namespace(default: Synth):
    for statements in default.statements_by_role().values():
        for statement in statements:
            if "cloudwatch:PutMetricData" in _actions(statement):
                assert statement["Condition"] == {
                    "StringEquals": {"cloudwatch:namespace": "Totes/Pipeline"}
                }


def test_nothing_may_delete_or_overwrite_acls_in_the_buckets(default: Synth):
    for statements in default.statements_by_role().values():
        for statement in statements:
            for action in _actions(statement):
                assert not action.startswith(("s3:Delete", "s3:PutBucket", "s3:PutObjectAcl"))


def test_each_secret_is_readable_only_by_the_roles_that_need_it(default: Synth):
    secrets = default.resources("AWS::SecretsManager::Secret")
    totesys = next(k for k in secrets if "Totesys" in k)
    warehouse = next(k for k in secrets if "Warehouse" in k)
    readers: dict[str, set[str]] = {totesys: set(), warehouse: set()}
    for role, statements in default.statements_by_role().items():
        for statement in statements:
            if "secretsmanager:GetSecretValue" in _actions(statement):
                readers[statement["Resource"]["Ref"]].add(role)
    role = {h: _role_of(default.function(h)[1]) for h in (*HANDLERS, VERIFY_HANDLER)}
    codebuild_role = default.one("AWS::CodeBuild::Project")[1]["Properties"]["ServiceRole"]
    # verify compares the two databases: the one role besides the steps' that reads both.
    assert readers[totesys] == {role["ingest.handler.lambda_handler"], role[VERIFY_HANDLER]}
    assert readers[warehouse] == {
        role["lambda_loader.handler.lambda_handler"],
        role["publish.handler.lambda_handler"],
        role[VERIFY_HANDLER],
        codebuild_role["Fn::GetAtt"][0],
    }


def test_writes_are_scoped_to_each_steps_prefix(default: Synth):
    puts: dict[str, set[str]] = {}
    for role, statements in default.statements_by_role().items():
        for statement in statements:
            if "s3:PutObject" in _actions(statement):
                puts.setdefault(role, set()).add(_flatten(statement["Resource"]))
    role = {h: _role_of(default.function(h)[1]) for h in HANDLERS}
    assert puts[role["ingest.handler.lambda_handler"]] == {
        "TOKEN/totesys/*",
        "TOKEN/_manifests/*",
        "TOKEN/_milestones/*",
    }
    assert puts[role["publish.handler.lambda_handler"]] == {"TOKEN/marts/*"}
    assert role["lambda_loader.handler.lambda_handler"] not in puts
    codebuild_role = default.one("AWS::CodeBuild::Project")[1]["Properties"]["ServiceRole"]
    assert puts[codebuild_role["Fn::GetAtt"][0]] == {"TOKEN/docs/*"}


def test_glue_permissions_are_scoped_to_the_marts_database(default: Synth):
    publish_role = _role_of(default.function("publish.handler.lambda_handler")[1])
    glue = [
        s
        for s in default.statements_by_role()[publish_role]
        if any(a.startswith("glue:") for a in _actions(s))
    ]
    (statement,) = glue
    resources = [_flatten(r) for r in statement["Resource"]]
    assert resources == [
        "arn:TOKEN:glue:TOKEN:TOKEN:catalog",
        "arn:TOKEN:glue:TOKEN:TOKEN:database/totes_marts",
        "arn:TOKEN:glue:TOKEN:TOKEN:table/totes_marts/*",
    ]
    assert "glue:DeleteTable" not in _actions(statement)
    for role, statements in default.statements_by_role().items():
        if role != publish_role:
            assert not any(a.startswith("glue:") for s in statements for a in _actions(s))


# --- configuration and lint ----------------------------------------------------------------


class _Node:
    def __init__(self, context: dict[str, str]) -> None:
        self.context = context

    def try_get_context(self, key: str) -> str | None:
        return self.context.get(key)


@pytest.mark.parametrize(
    "context",
    [
        {"alert_email": "not-an-email"},
        {"schedule_minutes": "0"},
        {"schedule_minutes": "45"},
        {"schedule_minutes": "five"},
        {"vpc_id": "vpc-1"},
        {"subnet_ids": "subnet-1"},
        {"stage": "Prod!"},
    ],
)
def test_bad_configuration_is_rejected(context: dict[str, str]):
    with pytest.raises(StackConfigError):
        StackConfig.from_context(_Node(context), environ={})


def test_configuration_defaults_and_environment_fallback():
    config = StackConfig.from_context(_Node({}), environ={"TOTES_ALERT_EMAIL": "a@b.example"})
    assert config.alert_email == "a@b.example"
    assert config.schedule_minutes == 5
    assert config.stage == "dev"
    assert StackConfig.from_context(_Node({}), environ={}).has_placeholder_email


def test_cfn_lint_passes_on_the_synthesised_templates(
    default: Synth, configured: Synth, private: Synth
):
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which(
        "cfn-lint"
    )
    assert cfn_lint, "cfn-lint is not installed"
    for synth in (default, configured, private):
        result = subprocess.run(
            [cfn_lint, "--ignore-checks", *CFN_LINT_IGNORED, "--", str(synth.template_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
