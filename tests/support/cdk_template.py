"""Reading a synthesised CDK stack: the tests in tests/infra share these (and the session
fixtures in tests/infra/conftest.py that synthesise each variant once per worker)."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk.assertions import Template

from infra.aws.app import build_app
from infra.aws.variants import PRIVATE_EXAMPLE

# A configured deployment: a VPC with an existing security group, existing secrets.
CONFIGURED = {
    "stage": "prod",
    "alert_email": "data-team@terrifictotes.example",
    "schedule_minutes": "10",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": "subnet-0aaaaaaaaaaaaaaaa,subnet-0bbbbbbbbbbbbbbbb",
    "route_table_ids": "rtb-0aaaaaaaaaaaaaaaa",
    "security_group_id": "sg-0123456789abcdef0",
    "totesys_secret": "totes/prod/totesys",
    "warehouse_secret": (
        "arn:aws:secretsmanager:eu-west-2:123456789012:secret:totes/prod/warehouse-AbC123"
    ),
    "pandas_layer_version": "99",
}
# The private variant `make lint` scans: the stack creates the pipeline's group and endpoints.
PRIVATE = dict(PRIVATE_EXAMPLE)


class Synth:
    def __init__(self, outdir: Path, context: dict[str, str] | None = None) -> None:
        app = build_app(context=context, outdir=str(outdir))
        (stack,) = [c for c in app.node.children if hasattr(c, "template_options")]
        self.stack = stack
        self.template = Template.from_stack(stack)
        self.json = self.template.to_json()
        self.template_path = outdir / f"{stack.stack_name}.template.json"
        self.outdir = outdir

    def resources(self, kind: str) -> dict[str, dict]:
        return {k: r for k, r in self.json["Resources"].items() if r["Type"] == kind}

    def one(self, kind: str) -> tuple[str, dict]:
        (item,) = self.resources(kind).items()
        return item

    def function(self, handler: str) -> tuple[str, dict]:
        (item,) = [
            (k, r)
            for k, r in self.resources("AWS::Lambda::Function").items()
            if r["Properties"]["Handler"] == handler
        ]
        return item

    def statements_by_role(self) -> dict[str, list[dict]]:
        by_role: dict[str, list[dict]] = {}
        for policy in self.resources("AWS::IAM::Policy").values():
            for role in policy["Properties"]["Roles"]:
                by_role.setdefault(role["Ref"], []).extend(
                    policy["Properties"]["PolicyDocument"]["Statement"]
                )
        return by_role

    def state_machine_definition(self) -> dict:
        (machine,) = self.resources("AWS::StepFunctions::StateMachine").values()
        return json.loads(flatten(machine["Properties"]["DefinitionString"]))


def flatten(value: object) -> str:
    """An Fn::Join of strings and intrinsics, with every intrinsic replaced by a placeholder."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(flatten(part) for part in parts)
    return "TOKEN"


def role_of(resource: dict) -> str:
    """The logical id of a Lambda function's role."""
    return resource["Properties"]["Role"]["Fn::GetAtt"][0]


def actions(statement: dict) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else value
