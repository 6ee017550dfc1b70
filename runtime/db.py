"""Database connections from a libpq URI (local) or a Secrets Manager secret (AWS).

pg8000 does not read libpq URIs, so this module parses the subset we use:
`postgresql://user[:password]@[host][:port]/dbname[?host=/socket/dir&port=N&sslmode=...]`.
A host that starts with `/` is a unix-socket directory (the local embedded
PostgreSQL listens on a socket only); any other host gets TLS unless
`sslmode=disable` is given explicitly.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pg8000.native


class ConnectionConfigError(ValueError):
    """A DSN or secret that cannot describe a database connection."""


class DatabaseUnavailableError(ConnectionError):
    """The database did not accept a connection."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        # The server's SQLSTATE when it refused the login (28P01: wrong password), else None.
        self.sqlstate = sqlstate

    @property
    def login_refused(self) -> bool:
        """invalid_password or invalid_authorization_specification: the credentials, not the
        network; a rotated secret is re-read on this (runtime.config)."""
        return self.sqlstate in ("28P01", "28000")


@dataclass(frozen=True)
class ConnectionParams:
    database: str
    user: str
    password: str | None = None
    host: str | None = None
    port: int = 5432
    sslmode: str | None = None

    @property
    def unix_socket(self) -> str | None:
        if self.host and self.host.startswith("/"):
            return f"{self.host}/.s.PGSQL.{self.port}"
        return None

    def describe(self) -> str:
        """Where this points, without the password: safe for logs and errors."""
        where = self.unix_socket or f"{self.host}:{self.port}"
        return f"{self.user}@{where}/{self.database}"


def parse_dsn(dsn: str) -> ConnectionParams:
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConnectionConfigError("DSN must be a postgresql:// URI")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    host = query.get("host") or (unquote(parts.hostname) if parts.hostname else None)
    port = int(query.get("port") or parts.port or 5432)
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", "")
    user = unquote(parts.username or "") or query.get("user", "")
    if not database or not user:
        raise ConnectionConfigError("DSN must name a user and a database")
    password = unquote(parts.password) if parts.password else query.get("password")
    return ConnectionParams(database, user, password, host, port, query.get("sslmode"))


def params_from_secret(secret: dict[str, Any]) -> ConnectionParams:
    """Secrets Manager's RDS secret shape: host, port, username/user, password, dbname/database."""
    try:
        return ConnectionParams(
            database=str(secret.get("dbname") or secret["database"]),
            user=str(secret.get("username") or secret["user"]),
            password=str(secret["password"]),
            host=str(secret["host"]),
            port=int(secret.get("port", 5432)),
            sslmode=secret.get("sslmode"),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConnectionConfigError(
            f"database secret is missing or has a bad field: {err}"
        ) from None


def read_secret(
    secret_id: str, secrets_client: Any, version_stage: str = "AWSCURRENT"
) -> ConnectionParams:
    """The secret's version labelled `version_stage`: AWSCURRENT, or AWSPENDING mid-rotation.

    The label is always named (it is GetSecretValue's default too): moto's default lookup does
    not follow a label a rotation has moved, so the local stack would serve the old version.
    """
    try:
        payload = secrets_client.get_secret_value(SecretId=secret_id, VersionStage=version_stage)[
            "SecretString"
        ]
        return params_from_secret(json.loads(payload))
    except json.JSONDecodeError:
        raise ConnectionConfigError(f"secret {secret_id} is not JSON") from None
    except ConnectionConfigError:
        raise
    except Exception as err:  # botocore's errors are many; all mean the same here
        raise ConnectionConfigError(f"cannot read secret {secret_id}: {err}") from None


def connect(target: str | ConnectionParams, **kwargs: Any) -> pg8000.native.Connection:
    """Open a pg8000 native connection; raises DatabaseUnavailableError with a safe message."""
    params = parse_dsn(target) if isinstance(target, str) else target
    options: dict[str, Any] = {
        "user": params.user,
        "database": params.database,
        "password": params.password,
        "timeout": kwargs.pop("timeout", 30),
        "application_name": kwargs.pop("application_name", "totes"),
    }
    if params.unix_socket:
        options["unix_sock"] = params.unix_socket
    else:
        options["host"] = params.host or "localhost"
        options["port"] = params.port
        if params.sslmode != "disable":
            context = ssl.create_default_context()
            if params.sslmode in ("require", "prefer", "allow"):
                # libpq's "require" encrypts without verifying the server certificate.
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            options["ssl_context"] = context
    options.update(kwargs)
    try:
        return pg8000.native.Connection(**options)
    except Exception as err:
        server = _server_error(err) or err
        fields = server.args[0] if server.args and isinstance(server.args[0], dict) else {}
        raise DatabaseUnavailableError(
            f"cannot connect to {params.describe()}: {type(server).__name__}: {server}",
            sqlstate=fields.get("C"),
        ) from None


def _server_error(err: BaseException) -> BaseException | None:
    """The server's own error under `err`: pg8000 raises its ErrorResponse fields as a dict
    ("C": the SQLSTATE), but after a refused login its clean-up on the socket the server has
    closed can raise "network error" over it (seen on a unix socket)."""
    seen: BaseException | None = err
    while seen is not None:
        if seen.args and isinstance(seen.args[0], dict) and "C" in seen.args[0]:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def close(conn: pg8000.native.Connection) -> None:
    """Close `conn`, which may already be closed (an abandoned COPY read closes its own)."""
    with contextlib.suppress(pg8000.exceptions.InterfaceError):
        conn.close()


# unique_violation, duplicate_schema, duplicate_table: what a concurrent `create ... if not
# exists` of the same catalog entry raises in the transaction that lost the race.
_DDL_RACES = frozenset({"23505", "42P06", "42P07"})


def run_ddl_once(conn: pg8000.native.Connection, lock_key: int, statements: Sequence[str]) -> None:
    """Run idempotent DDL in one transaction under `pg_advisory_xact_lock(lock_key)`.

    The lock serialises everyone creating the same objects (same key). An object shared with
    DDL guarded by another key (`create schema if not exists ops`, say) can still race; the
    loser's error means the winner has committed it, so the transaction is run once more.
    """
    for attempt in (1, 2):
        conn.run("start transaction")
        try:
            conn.run("select pg_advisory_xact_lock(:key)", key=lock_key)
            for statement in statements:
                conn.run(statement)
            conn.run("commit")
            return
        except pg8000.exceptions.DatabaseError as err:
            conn.run("rollback")
            code = err.args[0].get("C") if err.args and isinstance(err.args[0], dict) else None
            if attempt == 2 or code not in _DDL_RACES:
                raise
        except BaseException:
            conn.run("rollback")
            raise


def quote_ident(name: str) -> str:
    """Quote an identifier for SQL (Postgres rules): always quoted, quotes doubled."""
    if not name or "\x00" in name:
        raise ValueError(f"invalid identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"
