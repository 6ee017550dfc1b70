"""The AWS deployment of the pipeline: one CDK app (see infra/README.md)."""
