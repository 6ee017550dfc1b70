"""Infrastructure: the AWS stack as CDK code (`infra.aws`) and the local stack (`infra.local`)."""
