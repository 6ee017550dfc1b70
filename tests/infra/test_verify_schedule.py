"""The scheduled verification in the synthesised AWS stack: an EventBridge rule starts the verify
Lambda every hour; it ships the `verify` package and the runtime only; its role reads the two
databases' secrets and publishes to the alert topic, and nothing else; a failed run alarms on the
same topic, and drift is published there by the handler (tests/verify cover the message)."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest
from support.cdk_template import PRIVATE, Synth, actions, role_of

from infra.aws import verify as verify_construct
from infra.aws.config import StackConfigError

pytestmark = pytest.mark.xdist_group(name="infra-aws")

REPO = Path(__file__).resolve().parents[2]
HANDLER = verify_construct.HANDLER


def _verify_function(synth: Synth) -> tuple[str, dict]:
    return synth.function(HANDLER)


def _topic(synth: Synth) -> str:
    return synth.one("AWS::SNS::Topic")[0]


def _verify_rule(synth: Synth) -> dict:
    function = _verify_function(synth)[0]
    (rule,) = [
        r
        for r in synth.resources("AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [function, "Arn"]} for t in r["Properties"]["Targets"])
    ]
    return rule


def _may(statements: list[dict], action: str, resource: object) -> bool:
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action, a) for a in actions(statement)):
            continue
        resources = statement["Resource"]
        if resource in (resources if isinstance(resources, list) else [resources]):
            return True
    return False


def test_an_hourly_rule_starts_the_verify_lambda(default: Synth):
    props = _verify_rule(default)["Properties"]
    assert props["ScheduleExpression"] == "rate(1 hour)"
    assert props["State"] == "ENABLED"
    (target,) = props["Targets"]
    assert json.loads(target["Input"]) == {"trigger": "verify-schedule"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    # EventBridge may invoke the function, and only through this rule.
    function = _verify_function(default)[0]
    (permission,) = [
        p["Properties"]
        for p in default.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function, "Arn"]}
    ]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"


def test_the_verify_lambda_runs_one_at_a_time_without_retries_with_both_secrets(default: Synth):
    logical_id, function = _verify_function(default)
    props = function["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Timeout"] == 900
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["TracingConfig"] == {"Mode": "Active"}
    env = props["Environment"]["Variables"]
    assert {"TOTESYS_SECRET_ARN", "WAREHOUSE_SECRET_ARN", "ALERT_TOPIC_ARN"} <= set(env)
    assert env["ALERT_TOPIC_ARN"] == {"Ref": _topic(default)}
    assert env["TOTES_STEP"] == "verify"
    assert "KmsKeyArn" in props
    (invoke_config,) = [
        c["Properties"]
        for c in default.resources("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": logical_id}
    ]
    assert invoke_config["MaximumRetryAttempts"] == 0
    groups = default.resources("AWS::Logs::LogGroup")
    group = groups[props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
    assert group["LogGroupName"] == "/totes/dev/lambda/verify"
    assert group["RetentionInDays"] == 30


def test_the_verify_lambda_ships_the_verify_package_and_the_runtime_only(default: Synth):
    _, function = _verify_function(default)
    key = json.dumps(function["Properties"]["Code"]["S3Key"])
    asset_hash = re.search(r"([0-9a-f]{64})[^\"]*\.zip", key).group(1)
    (asset,) = [p for p in default.outdir.glob(f"asset.{asset_hash}*") if p.is_dir()]
    assert {p.name for p in asset.iterdir()} == {"verify", "runtime"}
    shipped = {p.relative_to(asset) for p in asset.rglob("*.py")}
    modules = {p.relative_to(REPO) for d in ("verify", "runtime") for p in (REPO / d).rglob("*.py")}
    assert modules <= shipped


def test_the_verify_role_reads_both_secrets_publishes_alerts_and_touches_no_data(default: Synth):
    statements = default.statements_by_role()[role_of(_verify_function(default)[1])]
    secrets = default.resources("AWS::SecretsManager::Secret")
    for secret in secrets:
        assert _may(statements, "secretsmanager:GetSecretValue", {"Ref": secret}), secret
    assert _may(statements, "sns:Publish", {"Ref": _topic(default)})
    granted = {a for s in statements for a in actions(s)}
    assert not [a for a in granted if a.startswith(("s3:", "glue:", "states:", "lambda:"))]
    assert not [a for a in granted if a.startswith("secretsmanager:Put")]
    kms = [s for s in statements if any(a.startswith("kms:") for a in actions(s))]
    assert kms and all(
        s["Condition"]["StringEquals"]["kms:ViaService"]
        == {"Fn::Join": ["", ["sns.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
        for s in kms
    )


def test_a_failed_verification_alarms_on_the_alert_topic(default: Synth):
    logical_id, function = _verify_function(default)
    alarms = [a["Properties"] for a in default.resources("AWS::CloudWatch::Alarm").values()]
    (errors,) = [
        a
        for a in alarms
        if a["MetricName"] == "Errors"
        and a["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": logical_id}}]
    ]
    assert errors["AlarmActions"] == [{"Ref": _topic(default)}]
    group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    (error_lines,) = [
        f["Properties"]
        for f in default.resources("AWS::Logs::MetricFilter").values()
        if f["Properties"]["LogGroupName"] == {"Ref": group}
    ]
    assert error_lines["FilterPattern"] == '{ $.level = "ERROR" }'


def test_in_a_vpc_the_verify_lambda_runs_in_the_private_subnets(private: Synth):
    _, function = _verify_function(private)
    assert function["Properties"]["VpcConfig"]["SubnetIds"] == PRIVATE["subnet_ids"].split(",")


class _Node:
    def __init__(self, context: dict[str, str]) -> None:
        self.context = context

    def try_get_context(self, key: str) -> str | None:
        return self.context.get(key)


def test_the_rate_comes_from_context_or_the_environment_within_bounds():
    assert verify_construct.every_minutes(_Node({}), {}) == 60
    assert verify_construct.every_minutes(_Node({"verify_every_minutes": "15"}), {}) == 15
    assert verify_construct.every_minutes(_Node({}), {"TOTES_VERIFY_EVERY_MINUTES": "30"}) == 30
    for bad in ("0", "4", "1441", "hourly"):
        with pytest.raises(StackConfigError, match="verify_every_minutes"):
            verify_construct.every_minutes(_Node({"verify_every_minutes": bad}), {})
