"""Secrets: the totesys and warehouse credentials, in Secrets Manager only.

Given an existing secret (context `totesys_secret` / `warehouse_secret`, a full ARN or a name)
the stack references it. Otherwise it creates one holding a generated password and placeholder
connection fields (the RDS secret shape `runtime.db.params_from_secret` reads), which an operator
fills in after the first deploy. No password is ever written in code or in the template.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

# Secrets Manager appends "-" and six random characters to every secret's ARN.
_COMPLETE_ARN = re.compile(r"^arn:[^:]+:secretsmanager:[^:]+:\d{12}:secret:.+-[A-Za-z0-9]{6}$")


@dataclass(frozen=True)
class DatabaseSecret:
    secret: sm.ISecret
    # What code passes as SecretId: the full ARN when known, else the secret's name.
    secret_id: str


class Secrets(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        totesys_secret: str | None,
        warehouse_secret: str | None,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.totesys = _database_secret(
            self,
            "Totesys",
            totesys_secret,
            name=f"totes/{stage}/totesys",
            dbname="totesys",
            key=key,
        )
        self.warehouse = _database_secret(
            self,
            "Warehouse",
            warehouse_secret,
            name=f"totes/{stage}/warehouse",
            dbname="warehouse",
            key=key,
        )


def _database_secret(
    scope: Construct,
    construct_id: str,
    existing: str | None,
    *,
    name: str,
    dbname: str,
    key: kms.IKey,
) -> DatabaseSecret:
    if existing and existing.startswith("arn:"):
        if _COMPLETE_ARN.match(existing):
            secret = sm.Secret.from_secret_complete_arn(scope, construct_id, existing)
        else:
            secret = sm.Secret.from_secret_partial_arn(scope, construct_id, existing)
        return DatabaseSecret(secret, existing)
    if existing:
        secret = sm.Secret.from_secret_name_v2(scope, construct_id, existing)
        return DatabaseSecret(secret, existing)

    template = {
        "engine": "postgres",
        "host": "REPLACE_WITH_HOST",
        "port": 5432,
        "username": "REPLACE_WITH_USERNAME",
        "dbname": dbname,
        # "require" encrypts; "verify-full" also needs the RDS CA bundle in the trust store.
        "sslmode": "require",
    }
    secret = sm.Secret(
        scope,
        construct_id,
        secret_name=name,
        description=f"Connection to the {dbname} database: fill in host, username and password.",
        generate_secret_string=sm.SecretStringGenerator(
            secret_string_template=json.dumps(template),
            generate_string_key="password",
            exclude_punctuation=True,
            password_length=32,
        ),
        # The stack's key: grant_read then adds kms:Decrypt through Secrets Manager only.
        encryption_key=key,
        removal_policy=RemovalPolicy.RETAIN,
    )
    return DatabaseSecret(secret, secret.secret_arn)
