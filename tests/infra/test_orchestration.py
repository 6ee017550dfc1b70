"""One cycle at a time in AWS: the state machine's first state counts its own RUNNING executions
and an execution that is not alone ends at once as skipped, with no alert; its role may list the
executions of this state machine and of nothing else. The full-table tests: an hourly rule
starts the dbt CodeBuild job in full-tests mode, whose failure alarms like any failed build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cdk_template import Synth, actions, flatten

from infra.aws.orchestration import GUARD

pytestmark = pytest.mark.xdist_group(name="infra-aws")
REPO = Path(__file__).resolve().parents[2]


def test_the_first_state_ends_an_execution_that_is_not_alone_without_an_alert(default: Synth):
    definition = default.state_machine_definition()
    states = definition["States"]

    guard = states[definition["StartAt"]]
    assert definition["StartAt"] == GUARD
    assert guard["Resource"].endswith(":states:::aws-sdk:sfn:listExecutions")
    assert guard["Parameters"] == {
        "StateMachineArn.$": "$$.StateMachine.Id",  # its own state machine, this execution's
        "StatusFilter": "RUNNING",
        "MaxResults": 2,
    }
    assert guard["ResultSelector"] == {"running.$": "States.ArrayLength($.Executions)"}
    choice = states[guard["Next"]]
    assert choice["Type"] == "Choice"
    [busy] = choice["Choices"]
    assert (busy["Variable"], busy["NumericGreaterThan"]) == ("$.guard.running", 1)
    assert states[busy["Next"]]["Type"] == "Succeed", "another cycle: stand down, no alert"
    assert choice["Default"] == "Extract", "alone: the cycle runs"
    # Only a failure of the check itself alerts (the role or the API is broken).
    assert guard["Retry"]
    [catch] = guard["Catch"]
    assert states[catch["Next"]] == {
        "Type": "Pass",
        "Result": GUARD,
        "ResultPath": "$.failed_step",
        "Next": "Alert",
    }


def test_the_state_machine_may_list_only_its_own_executions(default: Synth):
    [(_, machine)] = default.resources("AWS::StepFunctions::StateMachine").items()
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    statements = default.statements_by_role()[role]

    sfn = [s for s in statements if any(a.startswith("states:") for a in actions(s))]
    assert [actions(s) for s in sfn] == [["states:ListExecutions"]]
    [listing] = sfn
    assert listing["Effect"] == "Allow" and "Condition" not in listing
    name = machine["Properties"]["StateMachineName"]
    assert flatten(listing["Resource"]) == f"arn:TOKEN:states:TOKEN:TOKEN:stateMachine:{name}"
    assert json.dumps(listing).count("*") == 0, "no wildcard"


# ---- the full-table tests: their own schedule, the same CodeBuild job --------------------------


def _full_tests_rule(synth: Synth) -> dict:
    project = synth.one("AWS::CodeBuild::Project")[0]
    (rule,) = [
        r
        for r in synth.resources("AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [project, "Arn"]} for t in r["Properties"]["Targets"])
    ]
    return rule


def test_an_hourly_rule_runs_the_full_tests_in_the_dbt_codebuild_job(default: Synth):
    props = _full_tests_rule(default)["Properties"]
    assert props["ScheduleExpression"] == "rate(1 hour)"
    assert props["State"] == "ENABLED"
    (target,) = props["Targets"]
    start_build = json.loads(target["Input"])
    assert start_build == {
        "environmentVariablesOverride": [
            {"name": "DBT_TESTS", "value": "full", "type": "PLAINTEXT"},
            {"name": "EXECUTION_ID", "value": "full-tests", "type": "PLAINTEXT"},
        ]
    }
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    # EventBridge may start builds of this project, and nothing else.
    role = target["RoleArn"]["Fn::GetAtt"][0]
    project = default.one("AWS::CodeBuild::Project")[0]
    statements = default.statements_by_role()[role]
    assert [actions(s) for s in statements] == [["codebuild:StartBuild"]]
    assert statements[0]["Resource"] == {"Fn::GetAtt": [project, "Arn"]}
    # One build at a time: the full tests never run beside a cycle's build.
    assert default.one("AWS::CodeBuild::Project")[1]["Properties"]["ConcurrentBuildLimit"] == 1


def test_a_failed_full_test_run_alerts_like_any_failed_build(default: Synth):
    project = default.one("AWS::CodeBuild::Project")[0]
    topic = default.one("AWS::SNS::Topic")[0]
    (alarm,) = [
        a["Properties"]
        for a in default.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "FailedBuilds"
    ]
    assert alarm["Namespace"] == "AWS/CodeBuild"
    assert alarm["Dimensions"] == [{"Name": "ProjectName", "Value": {"Ref": project}}]
    assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (1, 1)
    assert alarm["AlarmActions"] == [{"Ref": topic}]


def test_in_full_tests_mode_the_job_tests_every_row_and_builds_nothing():
    script = (REPO / "infra" / "aws" / "codebuild" / "run_dbt.sh").read_text()
    build = script.split("phase_build() {", 1)[1].split("\n}\n", 1)[0]
    # `dbt test` alone: no build row in ops.dbt_invocations, so since_seq is 0 and every test sees
    # every row (dbt_warehouse/macros/build_state.sql); a build passes the project's hash.
    assert "if full_tests; then\n        dbt_cmd test" in build
    assert "\n        dbt_cmd build\n" in build
    runner = script.split("dbt_cmd() {", 1)[1].split("\n}\n", 1)[0]
    hash_vars = 'args+=(--vars "{\\"totes_project\\": \\"$(project_hash)\\"}")'
    assert f"build | test | source | docs) {hash_vars}" in runner
    for phase in ("phase_docs", "phase_publish_docs"):
        body = script.split(f"{phase}() {{", 1)[1].split("\n}\n", 1)[0]
        assert "if full_tests; then return; fi" in body, phase
