"""The local stack: embedded PostgreSQL + moto server, driven through `totes` as a person would."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import psutil
import pytest

from infra.local import stack as stack_module
from infra.local.stack import LocalStack, StackError
from runtime import db

TOTES = str(Path(sys.executable).with_name("totes"))


def totes(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOTES_HOME": str(home)}
    return subprocess.run(
        [TOTES, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


@pytest.fixture
def own_home() -> Iterator[Path]:
    """A stack home of this test's own, always torn down."""
    home = Path(tempfile.mkdtemp(prefix="totes-own-"))
    yield home
    totes(home, "down", "--purge")
    shutil.rmtree(home, ignore_errors=True)


def s3_client(env: dict[str, str]):
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def test_env_output_lets_psql_boto3_and_the_aws_cli_reach_the_stack(stack: LocalStack):
    script = (
        'eval "$(totes env)" && '
        'psql "$TOTESYS_DSN" -Atc "select current_database()" && '
        'psql "$WAREHOUSE_DSN" -Atc "select current_database()" && '
        "aws s3 ls && "
        'python -c \'import boto3; print(sorted(b["Name"] for b in '
        'boto3.client("s3").list_buckets()["Buckets"]))\''
    )
    env = {
        **os.environ,
        "TOTES_HOME": str(stack.home),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key, None)  # only what `totes env` exports may make this work
    out = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout.split("\n")
    assert out[0] == "totesys"
    assert out[1] == "warehouse"
    assert "totes-ingestion" in out[2] or "totes-ingestion" in "\n".join(out)
    assert "totes-processed" in out[-2]


def test_postgres_listens_on_a_socket_only_and_moto_on_loopback(stack: LocalStack):
    conn = db.connect(stack.env()["TOTESYS_DSN"])
    assert conn.run("show listen_addresses") == [[""]]
    conn.close()
    pid = stack.status()["s3"]["pid"]
    listening = [c.laddr for c in psutil.Process(pid).net_connections() if c.status == "LISTEN"]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


def test_up_twice_is_harmless(stack: LocalStack):
    before = stack.status()
    stack.up()
    assert stack.status() == before


def test_up_after_down_keeps_database_and_bucket_data(own_home: Path):
    local = LocalStack(own_home)
    env = local.up()
    conn = db.connect(env["WAREHOUSE_DSN"])
    conn.run("create table kept (v text)")
    conn.run("insert into kept values (:v)", v="still here")
    conn.close()
    s3_client(env).put_object(Bucket=env["INGESTION_BUCKET"], Key="a/b.txt", Body=b"lake")

    local.down()
    assert local.status()["postgres"]["running"] is False
    assert local.status()["s3"]["running"] is False
    env = local.up()

    conn = db.connect(env["WAREHOUSE_DSN"])
    assert conn.run("select v from kept") == [["still here"]]
    conn.close()
    body = s3_client(env).get_object(Bucket=env["INGESTION_BUCKET"], Key="a/b.txt")["Body"]
    assert body.read() == b"lake"


def test_down_purge_deletes_the_data(own_home: Path):
    local = LocalStack(own_home)
    local.up()
    local.down(purge=True)
    assert not (own_home / "pg").exists()
    env = local.up()
    conn = db.connect(env["TOTESYS_DSN"])
    assert conn.run("select count(*) from pg_tables where schemaname = 'public'") == [[0]]
    conn.close()


def test_a_killed_stack_recovers_on_the_next_up(own_home: Path):
    local = LocalStack(own_home)
    env = local.up()
    s3_client(env).put_object(Bucket=env["INGESTION_BUCKET"], Key="k", Body=b"v")
    time.sleep(stack_module_snapshot_wait())
    status = local.status()
    os.kill(status["postgres"]["pid"], signal.SIGKILL)
    os.kill(status["s3"]["pid"], signal.SIGKILL)
    psutil.wait_procs([psutil.Process(status["s3"]["pid"])], timeout=10)
    time.sleep(0.5)

    env = local.up()  # stale postmaster.pid, socket lock and pid file are cleared
    conn = db.connect(env["TOTESYS_DSN"])
    assert conn.run("select 1") == [[1]]
    conn.close()
    assert s3_client(env).get_object(Bucket=env["INGESTION_BUCKET"], Key="k")["Body"].read()


def stack_module_snapshot_wait() -> float:
    from infra.local import s3_server

    return s3_server.SNAPSHOT_INTERVAL_SECONDS * 2 + 1


def test_a_stale_pid_file_naming_an_unrelated_live_process_is_ignored(own_home: Path):
    local = LocalStack(own_home)
    local.up()
    local.down()
    (local.pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{local.pgdata}\n")
    (own_home / "s3_server.pid").write_text(str(os.getpid()))
    local.up()
    assert local.status()["postgres"]["running"]
    assert local.status()["s3"]["pid"] != os.getpid()
    local.down()
    assert psutil.pid_exists(os.getpid())  # down never signals a process it did not start


def test_two_homes_run_side_by_side(stack: LocalStack, own_home: Path):
    other = LocalStack(own_home)
    env = other.up()
    mine = stack.env()
    assert env["AWS_ENDPOINT_URL"] != mine["AWS_ENDPOINT_URL"]
    assert env["TOTESYS_DSN"] != mine["TOTESYS_DSN"]
    a, b = db.connect(env["TOTESYS_DSN"]), db.connect(mine["TOTESYS_DSN"])
    a.run("create table only_here (x int)")
    assert b.run("select to_regclass('only_here') is null") == [[True]]
    a.close()
    b.close()


def test_a_taken_port_moves_the_endpoint(own_home: Path):
    local = LocalStack(own_home)
    local.up()
    port = int(local.env()["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    local.down()
    with socket.socket() as squatter:
        # The stopped server's closed connections may leave the port in TIME_WAIT, which blocks
        # a plain bind but not one with SO_REUSEADDR; a listening squatter still blocks moto.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        env = local.up()
        assert env["AWS_ENDPOINT_URL"] != f"http://127.0.0.1:{port}"
        assert s3_client(env).list_buckets()["Buckets"]


def test_up_refuses_while_another_totes_command_holds_the_home(own_home: Path):
    local = LocalStack(own_home)
    own_home.mkdir(exist_ok=True)
    with (own_home / "stack.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = totes(own_home, "up")
    assert result.returncode == 1
    assert "another totes command" in result.stderr
    assert local.status()["postgres"]["running"] is False


def test_up_refuses_a_data_folder_holding_something_else(own_home: Path):
    (own_home / "pg" / "data").mkdir(parents=True)
    (own_home / "pg" / "data" / "precious.txt").write_text("not a cluster")
    result = totes(own_home, "up")
    assert result.returncode == 1
    assert "holds files but no PostgreSQL cluster" in result.stderr
    assert (own_home / "pg" / "data" / "precious.txt").read_text() == "not a cluster"


def test_missing_postgres_binaries_give_a_clear_error(
    own_home: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(stack_module, "PG_BIN", own_home / "nowhere")
    with pytest.raises(StackError, match="embedded PostgreSQL binaries are missing"):
        LocalStack(own_home).up()


def test_a_dsn_that_does_not_connect_names_the_target_without_secrets():
    with pytest.raises(db.DatabaseUnavailableError) as caught:
        db.connect("postgresql://someone:hunter2@/nope?host=/nonexistent&port=5432")
    assert "someone@/nonexistent/.s.PGSQL.5432/nope" in str(caught.value)
    assert "hunter2" not in str(caught.value)
