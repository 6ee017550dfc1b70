"""Skips of security-scanner checks, written into the template next to the resource they skip.

`make lint` runs checkov on every synthesised variant and must report 0 failed checks. A check
that does not fit this system is skipped here, on the one resource, with the reason, so the
skip is reviewed with the code (checkov reads `Metadata.checkov.skip` of a CloudFormation
resource); tests/infra/test_infra_security.py checks that every skip carries a reason.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct

MIN_REASON = 40  # characters: a reason says why, not just "n/a"


def skip_check(construct: IConstruct, check_id: str, reason: str) -> None:
    """Skip `check_id` on the construct's CloudFormation resource (its default child)."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    if len(reason) < MIN_REASON:
        raise ValueError(f"the reason for skipping {check_id} is too short to review: {reason!r}")
    metadata = resource.get_metadata("checkov") or {}
    skips = [s for s in metadata.get("skip", []) if s["id"] != check_id]
    resource.add_metadata(
        "checkov", {**metadata, "skip": [*skips, {"id": check_id, "comment": reason}]}
    )
