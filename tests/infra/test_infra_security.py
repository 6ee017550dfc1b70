"""The AWS stack as a security reviewer reads it: what each role may read or change (the threat
model in infra/README.md), the one KMS key and who may use it, the scanner's skips and their
reasons, and the private network (VPC endpoints and security groups, no NAT gateway).

The per-role boundaries are proved on the synthesised policies with a small evaluator: an
action on a resource is allowed when some Allow statement of the role matches both (IAM
wildcards; conditions are ignored, so "may not" is proved even for conditional grants). The
roles' AWS managed policies (Lambda basic execution, VPC access) touch only their own log
streams and network interfaces, never data.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match
from support.cdk_template import CONFIGURED, PRIVATE, Synth, actions, role_of

from infra.aws import compute
from infra.aws.checks import MIN_REASON
from infra.aws.config import StackConfig, StackConfigError
from infra.aws.network import INTERFACE_ENDPOINTS

# The session fixtures (tests/infra/conftest.py) are built once per worker for this group.
pytestmark = pytest.mark.xdist_group(name="infra-aws")

EXTRACT = "ingest.handler.lambda_handler"
LOAD = "lambda_loader.handler.lambda_handler"
PUBLISH = "publish.handler.lambda_handler"


# --- a small evaluator of the synthesised IAM policies -------------------------------------


def symbolic(value: object) -> str:
    """A resource with its intrinsics named: `{"Ref": X}` -> `ref:X`, GetAtt X.Arn -> `arn:X`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Ref" in value:
            return f"ref:{value['Ref']}"
        if "Fn::GetAtt" in value:
            name, attribute = value["Fn::GetAtt"]
            return f"arn:{name}" if attribute == "Arn" else f"{attribute.lower()}:{name}"
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(symbolic(part) for part in parts)
    return json.dumps(value)


def _resources(statement: dict) -> list[str]:
    value = statement["Resource"]
    return [symbolic(r) for r in (value if isinstance(value, list) else [value])]


class Role:
    def __init__(self, synth: Synth, logical_id: str) -> None:
        self.logical_id = logical_id
        self.statements = synth.statements_by_role().get(logical_id, [])

    def may(self, action: str, resource: str) -> bool:
        for statement in self.statements:
            if statement["Effect"] != "Allow":
                continue
            if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions(statement)):
                continue
            if any(fnmatch.fnmatchcase(resource, pattern) for pattern in _resources(statement)):
                return True
        return False


class Names:
    """Symbolic ARNs of the stack's resources, as `symbolic` writes them."""

    def __init__(self, synth: Synth) -> None:
        self.synth = synth
        self.buckets = {
            name: next(k for k in synth.resources("AWS::S3::Bucket") if name in k)
            for name in ("Ingestion", "Processed", "AccessLog")
        }
        self.secrets = {
            name: next(k for k in synth.resources("AWS::SecretsManager::Secret") if name in k)
            for name in ("Totesys", "Warehouse")
        }

    def object(self, bucket: str, key: str) -> str:
        return f"arn:{self.buckets[bucket]}/{key}"

    def bucket(self, bucket: str) -> str:
        return f"arn:{self.buckets[bucket]}"

    def secret(self, name: str) -> str:
        return f"ref:{self.secrets[name]}"

    def role(self, step: str) -> Role:
        if step == "dbt":
            _, project = self.synth.one("AWS::CodeBuild::Project")
            logical_id = project["Properties"]["ServiceRole"]["Fn::GetAtt"][0]
        elif step == "states":
            _, machine = self.synth.one("AWS::StepFunctions::StateMachine")
            logical_id = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        else:
            handler = {"extract": EXTRACT, "load": LOAD, "publish": PUBLISH}[step]
            logical_id = role_of(self.synth.function(handler)[1])
        return Role(self.synth, logical_id)


@pytest.fixture(scope="module")
def names(default: Synth) -> Names:
    return Names(default)


# Keys each step really writes (runtime/lake.py's prefixes; publish's marts/, dbt's docs/).
DATA_KEY = "totesys/sales_order/2024/01/02/part-0.parquet"
MANIFEST_KEY = "_manifests/sales_order/2024-01-02T00-00-00Z.json"
MART_KEY = "marts/fact_sales_order/part-0.parquet"
DOCS_KEY = "docs/2024/01/02/build-1/index.html"
WRITE = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl")
READ = ("s3:GetObject", "s3:GetObjectVersion")


# --- per-role boundaries (the threat model) --------------------------------------------------


def test_extract_reads_only_the_source_secret_and_writes_only_ingestion_prefixes(names: Names):
    role = names.role("extract")
    assert role.may("secretsmanager:GetSecretValue", names.secret("Totesys"))
    assert not role.may("secretsmanager:GetSecretValue", names.secret("Warehouse"))
    for key in (DATA_KEY, MANIFEST_KEY):
        assert role.may("s3:PutObject", names.object("Ingestion", key)), key
        assert role.may("s3:GetObject", names.object("Ingestion", key)), key
    for key in ("elsewhere/x.parquet", "totesys", "x/totesys/y.parquet"):
        assert not role.may("s3:PutObject", names.object("Ingestion", key)), key
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl"):
        assert not role.may(action, names.object("Ingestion", DATA_KEY)), action
    for key in (MART_KEY, DOCS_KEY):
        for action in (*READ, *WRITE):
            assert not role.may(action, names.object("Processed", key)), (action, key)


def test_loader_reads_ingestion_and_writes_nothing_in_s3(names: Names):
    role = names.role("load")
    assert role.may("s3:GetObject", names.object("Ingestion", MANIFEST_KEY))
    assert role.may("s3:GetObject", names.object("Ingestion", DATA_KEY))
    assert role.may("s3:ListBucket", names.bucket("Ingestion"))
    assert role.may("secretsmanager:GetSecretValue", names.secret("Warehouse"))
    assert not role.may("secretsmanager:GetSecretValue", names.secret("Totesys"))
    for bucket in names.buckets:
        for action in WRITE:
            assert not role.may(action, names.object(bucket, DATA_KEY)), (action, bucket)
            assert not role.may(action, names.object(bucket, MART_KEY)), (action, bucket)
    assert not role.may("s3:GetObject", names.object("Processed", MART_KEY))


def test_dbt_reads_the_warehouse_secret_and_writes_only_the_docs_prefix(names: Names):
    role = names.role("dbt")
    assert role.may("secretsmanager:GetSecretValue", names.secret("Warehouse"))
    assert not role.may("secretsmanager:GetSecretValue", names.secret("Totesys"))
    assert role.may("s3:PutObject", names.object("Processed", DOCS_KEY))
    assert not role.may("s3:PutObject", names.object("Processed", MART_KEY))
    for action in (*READ, *WRITE):
        assert not role.may(action, names.object("Ingestion", DATA_KEY)), action
    assert not role.may("s3:GetObject", names.object("Processed", MART_KEY))


def test_publish_writes_only_under_marts(names: Names):
    role = names.role("publish")
    assert role.may("secretsmanager:GetSecretValue", names.secret("Warehouse"))
    assert not role.may("secretsmanager:GetSecretValue", names.secret("Totesys"))
    assert role.may("s3:PutObject", names.object("Processed", MART_KEY))
    assert role.may("s3:GetObject", names.object("Processed", MART_KEY))
    assert not role.may("s3:PutObject", names.object("Processed", DOCS_KEY))
    assert not role.may("s3:PutObject", names.object("Processed", "marts"))
    for action in (*READ, *WRITE):
        assert not role.may(action, names.object("Ingestion", DATA_KEY)), action
    assert not role.may("s3:DeleteObject", names.object("Processed", MART_KEY))


def test_analysts_policy_reads_the_marts_and_nothing_else(default: Synth, names: Names):
    (policy,) = default.resources("AWS::IAM::ManagedPolicy").values()
    props = policy["Properties"]
    assert not {"Roles", "Users", "Groups"} & set(props)  # the operator attaches it
    analysts = Role(default, "analysts")
    analysts.statements = props["PolicyDocument"]["Statement"]
    assert analysts.may("s3:GetObject", names.object("Processed", MART_KEY))
    assert not analysts.may("s3:GetObject", names.object("Processed", DOCS_KEY))
    assert not analysts.may("s3:PutObject", names.object("Processed", MART_KEY))
    for bucket in ("Ingestion", "AccessLog"):
        assert not analysts.may("s3:GetObject", names.object(bucket, DATA_KEY))
        assert not analysts.may("s3:ListBucket", names.bucket(bucket))
    for secret in names.secrets:
        assert not analysts.may("secretsmanager:GetSecretValue", names.secret(secret))
    listing = next(
        s for s in props["PolicyDocument"]["Statement"] if s["Action"] == "s3:ListBucket"
    )
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["marts/*"]}}
    glue = {a for s in props["PolicyDocument"]["Statement"] for a in actions(s) if "glue:" in a}
    assert glue and all(a.startswith("glue:Get") or a == "glue:BatchGetPartition" for a in glue)


def test_no_role_reads_or_changes_the_access_logs(names: Names):
    for step in ("extract", "load", "publish", "dbt", "states"):
        role = names.role(step)
        for action in (*READ, *WRITE, "s3:ListBucket"):
            assert not role.may(action, names.object("AccessLog", "ingestion/2024-01-02-x")), step
            assert not role.may(action, names.bucket("AccessLog")), step


def test_state_machine_invokes_its_steps_and_publishes_alerts_without_data_access(
    default: Synth, names: Names
):
    role = names.role("states")
    for handler in (EXTRACT, LOAD, PUBLISH):
        function = default.function(handler)[0]
        assert role.may("lambda:InvokeFunction", f"arn:{function}")
    assert role.may("sns:Publish", f"ref:{default.one('AWS::SNS::Topic')[0]}")
    for bucket in names.buckets:
        for action in (*READ, *WRITE):
            assert not role.may(action, names.object(bucket, DATA_KEY)), (action, bucket)
    for secret in names.secrets:
        assert not role.may("secretsmanager:GetSecretValue", names.secret(secret))


def test_access_logs_record_every_request_to_the_data_buckets(default: Synth, names: Names):
    buckets = default.resources("AWS::S3::Bucket")
    for name, prefix in (("Ingestion", "ingestion/"), ("Processed", "processed/")):
        logging = buckets[names.buckets[name]]["Properties"]["LoggingConfiguration"]
        assert logging == {
            "DestinationBucketName": {"Ref": names.buckets["AccessLog"]},
            "LogFilePrefix": prefix,
        }
    (policy,) = [
        p
        for p in default.resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": names.buckets["AccessLog"]}
    ]
    allows = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
    ]
    assert {json.dumps(s["Principal"]) for s in allows} == {
        '{"Service": "logging.s3.amazonaws.com"}'
    }
    assert {s["Action"] for s in allows} == {"s3:PutObject"}
    sources = {s["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::GetAtt"][0] for s in allows}
    assert sources == {names.buckets["Ingestion"], names.buckets["Processed"]}
    rules = buckets[names.buckets["AccessLog"]]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r.get("ExpirationInDays") == 365 for r in rules)


# --- the key ---------------------------------------------------------------------------------


def _key(synth: Synth) -> tuple[str, dict]:
    return synth.one("AWS::KMS::Key")


def test_one_customer_managed_key_rotated_and_retained(default: Synth):
    logical_id, key = _key(default)
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    (alias,) = default.resources("AWS::KMS::Alias").values()
    assert alias["Properties"]["AliasName"] == "alias/totes/dev"
    assert alias["Properties"]["TargetKeyId"] == {"Fn::GetAtt": [logical_id, "Arn"]}


def test_the_key_encrypts_the_topic_secrets_log_groups_and_lambda_environments(default: Synth):
    key_arn = {"Fn::GetAtt": [_key(default)[0], "Arn"]}
    _, topic = default.one("AWS::SNS::Topic")
    assert topic["Properties"]["KmsMasterKeyId"] == key_arn
    secrets = default.resources("AWS::SecretsManager::Secret")
    assert len(secrets) == 2
    assert all(s["Properties"]["KmsKeyId"] == key_arn for s in secrets.values())
    groups = default.resources("AWS::Logs::LogGroup")
    assert len(groups) == 6
    assert all(g["Properties"]["KmsKeyId"] == key_arn for g in groups.values())
    functions = default.resources("AWS::Lambda::Function")
    assert len(functions) == 4  # the three steps and verify
    assert all(f["Properties"]["KmsKeyArn"] == key_arn for f in functions.values())


def test_key_policy_names_no_wildcard_principal_and_scopes_every_service(default: Synth):
    statements = _key(default)[1]["Properties"]["KeyPolicy"]["Statement"]
    for statement in statements:
        principal = statement["Principal"]
        assert principal != "*" and principal.get("AWS") != "*", statement
        if "Service" in principal:
            assert statement.get("Condition"), f"unscoped service statement: {statement}"
    (logs,) = [s for s in statements if "logs." in symbolic(s["Principal"].get("Service", ""))]
    arn = symbolic(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
    assert arn.endswith(":log-group:/totes/dev/*")
    log_names = [
        g["Properties"]["LogGroupName"] for g in default.resources("AWS::Logs::LogGroup").values()
    ]
    assert all(name.startswith("/totes/dev/") for name in log_names)
    (alarms,) = [
        s for s in statements if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert sorted(actions(alarms)) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert alarms["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_roles_use_the_key_only_through_sns_or_secrets_manager(default: Synth):
    key = _key(default)[0]
    seen = set()
    for role, statements in default.statements_by_role().items():
        for statement in statements:
            if not any(a.startswith("kms:") for a in actions(statement)):
                continue
            assert _resources(statement) == [f"arn:{key}"], (role, statement)
            assert set(actions(statement)) <= {"kms:Decrypt", "kms:GenerateDataKey*"}
            via = symbolic(statement["Condition"]["StringEquals"]["kms:ViaService"])
            assert via == "sns.ref:AWS::Region.amazonaws.com", (role, via)
            seen.add(role)
    # The key policy's own statements cover the secrets (Secrets Manager, per reader role).
    statements = _key(default)[1]["Properties"]["KeyPolicy"]["Statement"]
    readers = [s for s in statements if "Fn::GetAtt" in json.dumps(s["Principal"])]
    for statement in readers:
        assert actions(statement) == ["kms:Decrypt"]
        assert symbolic(statement["Condition"]["StringEquals"]["kms:ViaService"]) == (
            "secretsmanager.ref:AWS::Region.amazonaws.com"
        )
    assert len(seen) == 6  # the four Lambdas, CodeBuild, the state machine (alerts)


# --- the scanner's skips ---------------------------------------------------------------------

# Every skip in each variant, by (resource type, check): a new skip is a reviewed change here.
EXPECTED_SKIPS = {
    "default": {
        ("AWS::Lambda::Function", "CKV_AWS_116"): 4,
        ("AWS::Lambda::Function", "CKV_AWS_117"): 4,
        ("AWS::S3::Bucket", "CKV_AWS_18"): 1,
    },
    "private": {
        ("AWS::Lambda::Function", "CKV_AWS_116"): 4,
        ("AWS::S3::Bucket", "CKV_AWS_18"): 1,
        ("AWS::IAM::Policy", "CKV_AWS_111"): 1,
    },
}


def _skips(synth: Synth) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for resource in synth.json["Resources"].values():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            found.setdefault((resource["Type"], skip["id"]), []).append(skip["comment"])
    return found


@pytest.mark.parametrize("variant", sorted(EXPECTED_SKIPS))
def test_every_scanner_skip_is_expected_and_carries_a_reason(
    variant: str, default: Synth, private: Synth
):
    synth = {"default": default, "private": private}[variant]
    skips = _skips(synth)
    assert {k: len(v) for k, v in skips.items()} == EXPECTED_SKIPS[variant]
    for (_, check), reasons in skips.items():
        assert re.fullmatch(r"CKV2?_AWS_\d+", check)
        assert all(len(reason) >= MIN_REASON for reason in reasons), check


def test_the_codebuild_policy_skip_is_on_the_vpc_statement_only(private: Synth):
    (policy,) = [
        p
        for p in private.resources("AWS::IAM::Policy").values()
        if p.get("Metadata", {}).get("checkov")
    ]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert all(a.startswith("ec2:") for a in actions(statement))


# --- the private network ---------------------------------------------------------------------


def _endpoints(synth: Synth) -> dict[str, dict]:
    return {
        symbolic(e["Properties"]["ServiceName"]).rsplit(".", 1)[-1]: e["Properties"]
        for e in synth.resources("AWS::EC2::VPCEndpoint").values()
    }


def _group(synth: Synth, description_start: str) -> str:
    (logical_id,) = [
        k
        for k, g in synth.resources("AWS::EC2::SecurityGroup").items()
        if g["Properties"]["GroupDescription"].startswith(description_start)
    ]
    return logical_id


def _rules(synth: Synth, group: str, direction: str) -> set[tuple]:
    """(protocol, from, to, peer) of a group's rules, inline and as separate resources."""
    inline_key, kind = {
        "egress": ("SecurityGroupEgress", "AWS::EC2::SecurityGroupEgress"),
        "ingress": ("SecurityGroupIngress", "AWS::EC2::SecurityGroupIngress"),
    }[direction]
    rules = list(
        synth.resources("AWS::EC2::SecurityGroup")[group]["Properties"].get(inline_key, [])
    )
    rules += [
        r["Properties"]
        for r in synth.resources(kind).values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
    ]
    peer_keys = (
        "CidrIp",
        "DestinationSecurityGroupId",
        "SourceSecurityGroupId",
        "DestinationPrefixListId",
    )
    found = set()
    for rule in rules:
        assert rule.get("Description"), rule  # every rule says what it is for
        (peer,) = [symbolic(rule[k]) for k in peer_keys if k in rule]
        found.add((rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"), peer))
    return found


def test_private_variant_creates_every_endpoint_the_pipeline_needs(private: Synth):
    endpoints = _endpoints(private)
    services = {service for service, _ in INTERFACE_ENDPOINTS.values()}
    assert services == {"secretsmanager", "sns", "logs", "monitoring", "glue"}
    assert set(endpoints) == services | {"s3"}  # no Step Functions: nothing calls back
    s3 = endpoints["s3"]
    assert s3["VpcEndpointType"] == "Gateway"
    assert s3["RouteTableIds"] == PRIVATE["route_table_ids"].split(",")
    assert s3["VpcId"] == PRIVATE["vpc_id"]
    endpoint_group = _group(private, "Totes pipeline VPC endpoints")
    for service in services:
        props = endpoints[service]
        assert props["VpcEndpointType"] == "Interface", service
        assert props["PrivateDnsEnabled"] is True, service
        assert props["SubnetIds"] == PRIVATE["subnet_ids"].split(","), service
        assert props["SecurityGroupIds"] == [{"Fn::GetAtt": [endpoint_group, "GroupId"]}]
        assert symbolic(props["ServiceName"]) == f"com.amazonaws.ref:AWS::Region.{service}"


def test_pipeline_group_allows_only_the_database_port_and_https(private: Synth):
    pipeline = _group(private, "Totes pipeline Lambdas and CodeBuild")
    endpoint_group = _group(private, "Totes pipeline VPC endpoints")
    (database_group,) = PRIVATE["database_security_group_ids"].split(",")
    assert _rules(private, pipeline, "egress") == {
        ("tcp", 5432, 5432, database_group),
        ("tcp", 443, 443, f"groupid:{endpoint_group}"),
        # S3 through the gateway endpoint (no prefix list id given in this variant).
        ("tcp", 443, 443, "0.0.0.0/0"),
    }
    assert _rules(private, pipeline, "ingress") == set()


def test_endpoint_group_admits_https_from_the_pipeline_only(private: Synth):
    pipeline = _group(private, "Totes pipeline Lambdas and CodeBuild")
    endpoint_group = _group(private, "Totes pipeline VPC endpoints")
    assert _rules(private, endpoint_group, "ingress") == {("tcp", 443, 443, f"groupid:{pipeline}")}
    # CDK's placeholder for "no egress at all": an ICMP type nobody sends, to a host address.
    assert _rules(private, endpoint_group, "egress") == {("icmp", 252, 86, "255.255.255.255/32")}


def test_compute_runs_in_the_private_subnets_behind_the_pipeline_group(private: Synth):
    pipeline = {"Fn::GetAtt": [_group(private, "Totes pipeline Lambdas"), "GroupId"]}
    subnets = PRIVATE["subnet_ids"].split(",")
    for function in private.resources("AWS::Lambda::Function").values():
        assert function["Properties"]["VpcConfig"] == {
            "SecurityGroupIds": [pipeline],
            "SubnetIds": subnets,
        }
    _, project = private.one("AWS::CodeBuild::Project")
    vpc = project["Properties"]["VpcConfig"]
    assert vpc["SecurityGroupIds"] == [pipeline] and vpc["Subnets"] == subnets


def test_an_existing_pipeline_group_is_admitted_to_the_endpoints_and_left_alone(
    configured: Synth,
):
    endpoint_group = _group(configured, "Totes pipeline VPC endpoints")
    given = CONFIGURED["security_group_id"]
    assert _rules(configured, endpoint_group, "ingress") == {("tcp", 443, 443, given)}
    assert len(configured.resources("AWS::EC2::SecurityGroup")) == 1  # only the endpoints'
    assert not configured.resources("AWS::EC2::SecurityGroupEgress")
    assert set(_endpoints(configured)) == {
        "s3",
        "secretsmanager",
        "sns",
        "logs",
        "monitoring",
        "glue",
    }


def test_the_default_variant_has_no_network_resources(default: Synth):
    assert not [r for r in default.json["Resources"].values() if r["Type"].startswith("AWS::EC2::")]


def test_a_pinned_variant_sends_https_to_s3s_prefix_list_only(tmp_path):
    context = {
        **PRIVATE,
        "database_security_group_ids": "",
        "database_ports": "5432,6432",
        "s3_prefix_list_id": "pl-7ca54015",
    }
    pinned = Synth(tmp_path, context=context)
    pipeline = _group(pinned, "Totes pipeline Lambdas and CodeBuild")
    endpoint_group = _group(pinned, "Totes pipeline VPC endpoints")
    assert _rules(pinned, pipeline, "egress") == {
        ("tcp", 5432, 5432, "0.0.0.0/0"),
        ("tcp", 6432, 6432, "0.0.0.0/0"),
        ("tcp", 443, 443, f"groupid:{endpoint_group}"),
        ("tcp", 443, 443, "pl-7ca54015"),
    }


class _Node:
    def __init__(self, context: dict[str, str]) -> None:
        self.context = context

    def try_get_context(self, key: str) -> str | None:
        return self.context.get(key)


def test_a_vpc_needs_route_tables_for_the_s3_endpoint_unless_endpoints_are_off():
    vpc = {"vpc_id": "vpc-1", "subnet_ids": "subnet-1,subnet-2"}
    with pytest.raises(StackConfigError, match="route_table_ids"):
        StackConfig.from_context(_Node(vpc), environ={})
    off = StackConfig.from_context(_Node({**vpc, "vpc_endpoints": "false"}), environ={})
    assert not off.vpc_endpoints and off.database_ports == (5432,)
    with pytest.raises(StackConfigError, match="vpc_endpoints"):
        StackConfig.from_context(_Node({**vpc, "vpc_endpoints": "maybe"}), environ={})
    with pytest.raises(StackConfigError, match="database_ports"):
        StackConfig.from_context(_Node({"database_ports": "70000"}), environ={})


# --- CodeBuild without PyPI ------------------------------------------------------------------

RUN_DBT = Path(__file__).resolve().parents[2] / "infra" / "aws" / "codebuild" / "run_dbt.sh"
CODEBUILD_WHEELS = RUN_DBT.parents[1] / "codebuild-wheels.txt"


def test_the_wheels_list_is_what_the_install_phase_installs():
    (install,) = re.findall(r"pip install --quiet -c constraints.txt ([^\n]+)", RUN_DBT.read_text())
    listed = [
        line.strip()
        for line in CODEBUILD_WHEELS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(install.split()) == sorted(listed)


def _codebuild_env(synth: Synth) -> dict[str, str]:
    _, project = synth.one("AWS::CodeBuild::Project")
    variables = project["Properties"]["Environment"]["EnvironmentVariables"]
    return {v["Name"]: v["Value"] for v in variables}


def test_in_a_vpc_codebuild_installs_from_the_shipped_wheels(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "dbt_core-1.11.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    monkeypatch.setattr(compute, "DBT_WHEELS_DIR", wheels)
    synth = Synth(tmp_path / "out", context=PRIVATE)
    env = _codebuild_env(synth)
    assert env["PIP_NO_INDEX"] == "1"
    assert env["PIP_FIND_LINKS"] == "build/dbt-wheels"
    _, project = synth.one("AWS::CodeBuild::Project")
    asset = re.search(r"([0-9a-f]{64})\.zip", json.dumps(project["Properties"]["Source"])).group(1)
    (source,) = [p for p in synth.outdir.glob(f"asset.{asset}*") if p.is_dir()]
    assert (source / "build/dbt-wheels/dbt_core-1.11.0-py3-none-any.whl").is_file()
    assert (source / "infra/aws/codebuild/run_dbt.sh").is_file()  # the source is otherwise whole


def test_without_wheels_a_private_synth_warns_and_the_default_uses_pypi(
    tmp_path, monkeypatch, default: Synth
):
    assert "PIP_NO_INDEX" not in _codebuild_env(default)  # no VPC: PyPI, as before
    monkeypatch.setattr(compute, "DBT_WHEELS_DIR", tmp_path / "empty")
    synth = Synth(tmp_path / "out", context=PRIVATE)
    assert "PIP_NO_INDEX" not in _codebuild_env(synth)
    warnings = Annotations.from_stack(synth.stack).find_warning("*", Match.any_value())
    assert any("make dbt-wheels" in str(w.entry.data) for w in warnings)
