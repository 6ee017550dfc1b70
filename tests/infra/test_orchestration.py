"""One cycle at a time in AWS: the state machine's first state counts its own RUNNING executions
and an execution that is not alone ends at once as skipped, with no alert; its role may list the
executions of this state machine and of nothing else."""

from __future__ import annotations

import json

import pytest
from support.cdk_template import Synth, actions, flatten

from infra.aws.orchestration import GUARD

pytestmark = pytest.mark.xdist_group(name="infra-aws")


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
