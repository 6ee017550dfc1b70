"""The CDK app: `python infra/aws/app.py` (or `cdk synth` in infra/aws) synthesises offline.

Configuration comes from CDK context (`-c key=value`, see infra/README.md) or TOTES_<KEY>
environment variables. The template goes to infra/aws/cdk.out unless the CDK CLI says otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
if str(REPO_ROOT) not in sys.path:  # `cd infra/aws && python app.py` (cdk.json) imports infra.aws
    sys.path.insert(0, str(REPO_ROOT))

import aws_cdk as cdk  # noqa: E402

from infra.aws.config import StackConfig  # noqa: E402
from infra.aws.stack import TotesPipelineStack  # noqa: E402

# CDK feature flags the stack relies on, set here so `python app.py`, the CDK CLI and the tests
# synthesise the same template. S3 access logs are delivered under a bucket policy (scoped to
# the logged buckets), not the LogDeliveryWrite ACL that bucket-owner-enforced buckets refuse.
FEATURE_FLAGS = {"@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True}


def build_app(context: dict | None = None, outdir: str | None = None) -> cdk.App:
    """The app with its one stack; tests call this with their own context and outdir."""
    app = cdk.App(
        context={**FEATURE_FLAGS, **(context or {})},
        outdir=outdir or os.environ.get("CDK_OUTDIR") or str(HERE / "cdk.out"),
    )
    config = StackConfig.from_context(app.node)
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = app.node.try_get_context("region") or os.environ.get("CDK_DEFAULT_REGION")
    TotesPipelineStack(
        app,
        f"TotesPipeline-{config.stage}",
        config=config,
        description="Terrific Totes ELT: extract, load, dbt build, publish (infra/README.md).",
        env=cdk.Environment(account=account, region=region) if account or region else None,
    )
    return app


def main() -> None:
    assembly = build_app().synth()
    # The CDK CLI prints these; a plain `python app.py` would not.
    for stack in assembly.stacks:
        for message in stack.messages:
            if message.level.name in ("WARNING", "ERROR"):
                print(f"[{message.level.name}] {message.entry.data}", file=sys.stderr)
    print(f"synthesised to {assembly.directory}", file=sys.stderr)


if __name__ == "__main__":
    main()
