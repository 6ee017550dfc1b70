"""The warehouse's network: with `vpc_id`, the pipeline runs privately, with no NAT gateway.

The Lambdas and CodeBuild get interfaces in the warehouse VPC's private subnets. They reach AWS
through VPC endpoints the stack creates (unless `vpc_endpoints=false`, for a VPC that already
has them or routes through a NAT):

- S3: a gateway endpoint, a route in the private subnets' route tables (`route_table_ids`);
- interface endpoints, private DNS on, in the same subnets: Secrets Manager (the database
  secrets: the Lambdas' reads, CodeBuild's `env.secrets-manager`), SNS (the steps' alerts),
  CloudWatch Logs (CodeBuild's build log), CloudWatch metrics (the steps' metrics and the
  freshness lag) and Glue (publish registers the marts).

No Step Functions endpoint: nothing in the VPC calls Step Functions (the state machine invokes
the Lambdas and runs the build from the service side; no task tokens, no callbacks). Nor KMS
or STS: Secrets Manager, CloudWatch Logs and Lambda use the key on the service side, and the
roles' credentials come with the runtime.

Security groups, when the stack creates the pipeline's group (no `security_group_id`): the
pipeline may open TCP connections only to the database ports (to `database_security_group_ids`
when given) and HTTPS (to the endpoints' group, and to S3 through the gateway: its prefix list
when `s3_prefix_list_id` is given). The endpoints' group admits HTTPS from the pipeline's group
only. tests/infra/test_infra_security.py proves each endpoint and each rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2

from infra.aws.config import StackConfig

HTTPS = 443
# The interface endpoints: construct id -> (service suffix, what the pipeline uses it for).
INTERFACE_ENDPOINTS = {
    "SecretsManager": ("secretsmanager", "the database secrets"),
    "Sns": ("sns", "alerts from the steps"),
    "Logs": ("logs", "the CodeBuild build log"),
    "Monitoring": ("monitoring", "PutMetricData: step metrics, freshness lag"),
    "Glue": ("glue", "publish registers the marts in the Glue catalog"),
}


@dataclass(frozen=True)
class Network:
    """Where the warehouse lives; None of these when the databases are reachable publicly."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_groups: list[ec2.ISecurityGroup]
    # The endpoints the stack created: construct id -> resource (empty with vpc_endpoints=false).
    endpoints: dict[str, ec2.CfnVPCEndpoint]


def build_network(stack: Stack, config: StackConfig) -> Network | None:
    """The VPC, subnets, security groups and endpoints, created in `stack` (its construct ids
    are the stack's own, so the pipeline's group keeps its logical id)."""
    if not config.vpc_id:
        return None
    vpc = ec2.Vpc.from_vpc_attributes(
        stack,
        "WarehouseVpc",
        vpc_id=config.vpc_id,
        availability_zones=stack.availability_zones,
    )
    subnets = [
        ec2.Subnet.from_subnet_id(stack, f"WarehouseSubnet{i}", subnet_id)
        for i, subnet_id in enumerate(config.subnet_ids)
    ]
    endpoint_group = (
        ec2.SecurityGroup(
            stack,
            "EndpointSecurityGroup",
            vpc=vpc,
            description="Totes pipeline VPC endpoints: HTTPS from the pipeline group only.",
            allow_all_outbound=False,
        )
        if config.vpc_endpoints
        else None
    )
    if config.security_group_id:
        group = ec2.SecurityGroup.from_security_group_id(
            stack, "PipelineSecurityGroup", config.security_group_id, mutable=False
        )
    else:
        group = _pipeline_group(stack, vpc, config, endpoint_group)
        CfnOutput(stack, "PipelineSecurityGroupId", value=group.security_group_id)

    endpoints: dict[str, ec2.CfnVPCEndpoint] = {}
    if endpoint_group is not None:
        endpoint_group.add_ingress_rule(
            ec2.Peer.security_group_id(group.security_group_id),
            ec2.Port.tcp(HTTPS),
            "HTTPS from the pipeline Lambdas and CodeBuild",
        )
        endpoints["S3"] = ec2.CfnVPCEndpoint(
            stack,
            "S3GatewayEndpoint",
            vpc_id=config.vpc_id,
            service_name=f"com.amazonaws.{Aws.REGION}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=list(config.route_table_ids),
        )
        for name, (service, _) in INTERFACE_ENDPOINTS.items():
            endpoints[name] = ec2.CfnVPCEndpoint(
                stack,
                f"{name}Endpoint",
                vpc_id=config.vpc_id,
                service_name=f"com.amazonaws.{Aws.REGION}.{service}",
                vpc_endpoint_type="Interface",
                subnet_ids=list(config.subnet_ids),
                security_group_ids=[endpoint_group.security_group_id],
                # The SDKs' default endpoint names resolve to the endpoint inside the VPC.
                private_dns_enabled=True,
            )
    return Network(
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnets=subnets),
        security_groups=[group],
        endpoints=endpoints,
    )


def _pipeline_group(
    stack: Stack,
    vpc: ec2.IVpc,
    config: StackConfig,
    endpoint_group: ec2.ISecurityGroup | None,
) -> ec2.SecurityGroup:
    group = ec2.SecurityGroup(
        stack,
        "PipelineSecurityGroup",
        vpc=vpc,
        description="Totes pipeline Lambdas and CodeBuild: allow it on the databases port.",
        allow_all_outbound=False,
    )
    database_peers = [
        (ec2.Peer.security_group_id(sg), f"the database group {sg}")
        for sg in config.database_security_group_ids
    ] or [(ec2.Peer.any_ipv4(), "the databases")]
    for port in config.database_ports:
        for peer, what in database_peers:
            group.add_egress_rule(peer, ec2.Port.tcp(port), f"PostgreSQL {port} to {what}")
    if endpoint_group is not None:
        group.add_egress_rule(
            endpoint_group, ec2.Port.tcp(HTTPS), "HTTPS to the interface VPC endpoints"
        )
    if endpoint_group is not None and config.s3_prefix_list_id:
        group.add_egress_rule(
            ec2.Peer.prefix_list(config.s3_prefix_list_id),
            ec2.Port.tcp(HTTPS),
            "HTTPS to S3 through the gateway endpoint",
        )
    else:
        # S3's gateway endpoint is reached on S3's public addresses (its prefix list, whose id
        # differs by region: pass s3_prefix_list_id to pin it); with no NAT those and the
        # endpoints are all that 443 reaches. With vpc_endpoints=false, the NAT or endpoints
        # already in the VPC.
        group.add_egress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(HTTPS),
            "HTTPS to S3 (gateway endpoint) or, with vpc_endpoints=false, the VPC own route",
        )
    return group
