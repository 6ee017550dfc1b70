"""A rotated database password is picked up by the next cycle and never kept past a failed login
(runtime/config.py), against the local stack: Secrets Manager on its moto server, and the
embedded PostgreSQL made to check a password.

The local PostgreSQL trusts every local connection (`initdb --auth=trust`), so a wrong password
would log in. Each test therefore creates a role of its own and puts a `scram-sha-256` line for
that role alone at the top of the stack's pg_hba.conf (first match wins), reloads, and proves
a wrong password is refused before anything else; the line and the role go afterwards. Other
roles, other tests and the other workers' stacks are untouched.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime import db
from runtime.config import Settings


@dataclass
class RotatingRole:
    """A password-checked role on the test stack and the secret that holds its password."""

    name: str
    database: str
    socket_dir: str
    secret_arn: str
    admin: db.pg8000.native.Connection
    secrets: object  # the Secrets Manager client

    def secret_value(self, password: str) -> str:
        return json.dumps(
            {
                "engine": "postgres",
                "host": self.socket_dir,
                "port": 5432,
                "username": self.name,
                "password": password,
                "dbname": self.database,
            }
        )

    def set_database_password(self, password: str) -> None:
        # ALTER ROLE takes no parameters: format() builds it server-side from bound values.
        [[statement]] = self.admin.run(
            "select format('alter role %I password %L', cast(:r as text), cast(:p as text))",
            r=self.name,
            p=password,
        )
        self.admin.run(statement)

    def put_secret(self, password: str, stages: list[str] | None = None) -> str:
        extra = {"VersionStages": stages} if stages else {}
        response = self.secrets.put_secret_value(  # type: ignore[attr-defined]
            SecretId=self.secret_arn, SecretString=self.secret_value(password), **extra
        )
        return response["VersionId"]

    def settings(self, base: Settings) -> Settings:
        """A fresh Settings, as each cycle's handler builds one: nothing read yet."""
        return base.with_(warehouse_dsn=None, warehouse_secret_arn=self.secret_arn)


def _reload(admin: db.pg8000.native.Connection) -> None:
    admin.run("select pg_reload_conf()")


@pytest.fixture
def role(stack, isolated) -> Iterator[RotatingRole]:
    name = f"rotation_{uuid.uuid4().hex[:8]}"
    admin = db.connect(
        f"postgresql://postgres@/{isolated.warehouse_db}?host={isolated.socket_dir}&port=5432"
    )
    [[statement]] = admin.run(
        "select format('create role %I login password %L', cast(:r as text), 'first')", r=name
    )
    admin.run(statement)
    [[hba_file]] = admin.run("show hba_file")
    hba = Path(hba_file)
    original = hba.read_text()
    line = f"local all {name} scram-sha-256\n"
    hba.write_text(line + original)  # keeps the file's owner: the server can still read it
    _reload(admin)
    secrets = isolated.settings.client("secretsmanager")
    secret_arn = secrets.create_secret(Name=f"totes/test/{name}", SecretString="{}")["ARN"]
    rotating = RotatingRole(
        name, isolated.warehouse_db, isolated.socket_dir, secret_arn, admin, secrets
    )
    rotating.put_secret("first")
    _wait_until_passwords_are_checked(rotating)
    try:
        yield rotating
    finally:
        hba.write_text(hba.read_text().replace(line, "", 1))
        _reload(admin)
        admin.run(f"drop role if exists {db.quote_ident(name)}")
        secrets.delete_secret(SecretId=secret_arn, ForceDeleteWithoutRecovery=True)
        admin.close()


def _login(rotating: RotatingRole, password: str) -> db.pg8000.native.Connection:
    params = db.ConnectionParams(
        rotating.database, rotating.name, password, host=rotating.socket_dir, port=5432
    )
    return db.connect(params, timeout=5)


def _wait_until_passwords_are_checked(rotating: RotatingRole) -> None:
    """pg_reload_conf() only signals the server: wait until a wrong password is refused."""
    deadline = time.monotonic() + 10
    while True:
        try:
            db.close(_login(rotating, "not-the-password"))
        except db.DatabaseUnavailableError as err:
            assert err.sqlstate == "28P01" and err.login_refused, err
            db.close(_login(rotating, "first"))
            return
        if time.monotonic() > deadline:
            pytest.fail("the local PostgreSQL still trusts the role: pg_hba.conf not reloaded")
        time.sleep(0.1)


@pytest.fixture
def reads(monkeypatch) -> list[str | None]:
    """Every read of a secret (None for AWSCURRENT, else the version stage), through runtime.db."""
    calls: list[str | None] = []
    original = db.read_secret

    def counting(secret_id, client, version_stage="AWSCURRENT"):
        calls.append(None if version_stage == "AWSCURRENT" else version_stage)
        return original(secret_id, client, version_stage=version_stage)

    monkeypatch.setattr(db, "read_secret", counting)
    return calls


def _user(conn: db.pg8000.native.Connection) -> str:
    try:
        [[user]] = conn.run("select current_user")
        return user
    finally:
        db.close(conn)


def test_a_cycle_reads_the_secret_once_for_all_its_connections(role, isolated, reads):
    settings = role.settings(isolated.settings)
    for _ in range(3):
        assert _user(settings.warehouse_connection()) == role.name
    assert reads == [None]


def test_a_rotated_password_is_picked_up_by_the_next_cycle(role, isolated, reads):
    running = role.settings(isolated.settings)
    assert _user(running.warehouse_connection()) == role.name
    # The rotation: the database and the secret get the new password; the old one is refused.
    role.set_database_password("second")
    role.put_secret("second")
    with pytest.raises(db.DatabaseUnavailableError):
        _login(role, "first")

    next_cycle = role.settings(isolated.settings)
    assert _user(next_cycle.warehouse_connection()) == role.name
    # A cycle that kept the old password reads the secret again on the refused login.
    assert _user(running.warehouse_connection()) == role.name
    assert reads == [None, None, None]
    assert _user(running.warehouse_connection()) == role.name  # and keeps the new one
    assert reads == [None, None, None]


def test_a_refused_login_is_never_kept(role, isolated, reads):
    role.put_secret("wrong")  # a bad edit of the secret: the database still has "first"
    settings = role.settings(isolated.settings)
    with pytest.raises(db.DatabaseUnavailableError) as refused:
        settings.warehouse_connection()
    assert refused.value.sqlstate == "28P01"
    assert "password authentication failed" in str(refused.value)
    assert "wrong" not in str(refused.value)  # the message never carries the password
    # AWSCURRENT refused, then AWSPENDING looked for (there is none): nothing kept.
    assert reads == [None, "AWSPENDING"]

    role.put_secret("first")  # fixed: the same Settings reads it again, not a cached copy
    assert _user(settings.warehouse_connection()) == role.name
    assert reads == [None, "AWSPENDING", None]


def test_mid_rotation_the_pending_version_logs_in(role, isolated, reads):
    running = role.settings(isolated.settings)
    assert _user(running.warehouse_connection()) == role.name
    # A single-user rotation between setSecret and finishSecret: the database already has the
    # AWSPENDING password while AWSCURRENT still holds the old one.
    pending = role.put_secret("second", stages=["AWSPENDING"])
    role.set_database_password("second")

    assert _user(running.warehouse_connection()) == role.name
    fresh = role.settings(isolated.settings)
    assert _user(fresh.warehouse_connection()) == role.name
    assert reads == [None, None, "AWSPENDING", None, "AWSPENDING"]

    # finishSecret: AWSCURRENT moves to the new version; the next cycle reads it directly.
    versions = role.secrets.list_secret_version_ids(SecretId=role.secret_arn)["Versions"]
    (current,) = [v["VersionId"] for v in versions if "AWSCURRENT" in v["VersionStages"]]
    role.secrets.update_secret_version_stage(
        SecretId=role.secret_arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId=pending,
        RemoveFromVersionId=current,
    )
    role.secrets.update_secret_version_stage(
        SecretId=role.secret_arn, VersionStage="AWSPENDING", RemoveFromVersionId=pending
    )
    reads.clear()
    assert _user(role.settings(isolated.settings).warehouse_connection()) == role.name
    assert reads == [None]


def test_an_unreachable_database_is_not_mistaken_for_a_rotation(role, isolated, reads, tmp_path):
    role.secrets.put_secret_value(
        SecretId=role.secret_arn,
        SecretString=role.secret_value("first").replace(role.socket_dir, str(tmp_path)),
    )
    with pytest.raises(db.DatabaseUnavailableError) as caught:
        role.settings(isolated.settings).warehouse_connection()
    assert caught.value.sqlstate is None and not caught.value.login_refused
    assert reads == [None]  # no second read, no AWSPENDING: the network, not the credentials
