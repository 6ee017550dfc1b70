"""Shared fixtures: one real local stack per test session (per xdist worker), and per-test
isolation by fresh databases and buckets on it, empty (`isolated`) or holding a copy of a state
the worker prepared once (`from_template`, tests/support/templates.py). Nothing here is mocked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from support.templates import (
    Template,
    Templates,
    copy_bucket,
    copy_databases,
    copy_work_dir,
    freeze,
)

from infra.local.stack import PG_PORT, PG_SUPERUSER, REGION, LocalStack
from runtime import db
from runtime.config import Settings
from totes import dbt_build

# Bytecode as `make` keeps it (Makefile: PYTHONPYCACHEPREFIX): one cache in the venv, written
# once, never in the checkout. uv installs no bytecode, so a run started by hand with
# PYTHONDONTWRITEBYTECODE would otherwise compile dbt's and the AWS SDK's imports in every
# subprocess, every time.
if not os.environ.get("PYTHONPYCACHEPREFIX"):
    os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix = str(Path(sys.prefix) / "pycache")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (the order is otherwise kept): `--dist loadgroup` hands work to the
    workers in this order, so the long tests start at once and the many short ones fill the end,
    instead of one worker running a long module alone while the other has finished."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@dataclass
class Isolated:
    """A private totesys, warehouse and pair of buckets on the shared test stack."""

    settings: Settings
    totesys_db: str
    warehouse_db: str
    socket_dir: str

    @property
    def totesys_dsn(self) -> str:
        return self.settings.totesys_dsn or ""

    @property
    def warehouse_dsn(self) -> str:
        return self.settings.warehouse_dsn or ""

    def totesys(self) -> db.pg8000.native.Connection:
        return db.connect(self.totesys_dsn)

    def warehouse(self) -> db.pg8000.native.Connection:
        return db.connect(self.warehouse_dsn)

    def s3(self):
        return self.settings.client("s3")

    def env(self) -> dict[str, str]:
        """Environment variables for subprocesses (totes, dbt) aimed at this isolation."""
        s = self.settings
        return {
            **os.environ,
            "TOTESYS_DSN": self.totesys_dsn,
            "WAREHOUSE_DSN": self.warehouse_dsn,
            "WAREHOUSE_HOST": self.socket_dir,
            "WAREHOUSE_PORT": str(PG_PORT),
            "WAREHOUSE_USER": PG_SUPERUSER,
            "WAREHOUSE_PASSWORD": "",
            "WAREHOUSE_DB": self.warehouse_db,
            "INGESTION_BUCKET": s.ingestion_bucket,
            "PROCESSED_BUCKET": s.processed_bucket,
            "ALERT_TOPIC_ARN": s.alert_topic_arn or "",
            "AWS_ENDPOINT_URL": s.aws_endpoint_url or "",
        }


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """A whole local stack in a temporary TOTES_HOME, purged at the end."""
    home = Path(tempfile.mkdtemp(prefix="totes-test-"))
    local = LocalStack(home)
    env = local.up()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    yield local
    local.down(purge=True)
    shutil.rmtree(home, ignore_errors=True)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# One pair of database names per xdist worker, dropped and created afresh for every test (a
# worker runs one test at a time). Stable names keep dbt's profile hash stable, so every dbt
# invocation on the worker can reuse one saved parse (dbt_parse_cache below).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
DATABASES = (f"totesys_{WORKER}", f"warehouse_{WORKER}")


@pytest.fixture(scope="session")
def dbt_parse_cache(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Parse the dbt project once for this worker's warehouse name and point every later dbt
    run at that parse (DBT_PARTIAL_PARSE_FILE_PATH): ~5 s less per invocation. It is made with
    the vars every invocation of the cycle passes (dbt keeps a parse only for the same vars).
    The project never changes during a test session; dbt re-parses fully if anything differs."""
    target = tmp_path_factory.mktemp("dbt-parse")
    sock = str(stack.socket_dir)
    env = {
        **os.environ,
        "WAREHOUSE_HOST": sock,
        "WAREHOUSE_PORT": str(PG_PORT),
        "WAREHOUSE_USER": PG_SUPERUSER,
        "WAREHOUSE_PASSWORD": "",
        "WAREHOUSE_DB": DATABASES[1],
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    env.pop("DBT_PARTIAL_PARSE_FILE_PATH", None)
    project = Path(__file__).resolve().parents[1] / "dbt_warehouse"
    dbt = Path(sys.executable).with_name("dbt")
    done = subprocess.run(
        [str(dbt), "parse", "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(target / "target"), "--log-path", str(target / "logs"),
         *dbt_build.project_vars(dbt_build.project_hash(project))],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    saved = target / "target" / "partial_parse.msgpack"
    if done.returncode != 0 or not saved.exists():
        return None  # every dbt run parses in full, as without the cache
    os.environ["DBT_PARTIAL_PARSE_FILE_PATH"] = str(saved)
    return saved


def _admin(stack: LocalStack) -> db.pg8000.native.Connection:
    return db.connect(
        f"postgresql://{PG_SUPERUSER}@/postgres?host={stack.socket_dir}&port={PG_PORT}"
    )


def _fresh_isolation(stack: LocalStack, admin: db.pg8000.native.Connection) -> Isolated:
    """The worker's pair of databases dropped and created empty, and two new buckets."""
    env = stack.env()
    tag = uuid.uuid4().hex[:10]
    sock = str(stack.socket_dir)
    names = DATABASES
    for name in names:
        admin.run(f"drop database if exists {db.quote_ident(name)} with (force)")
        admin.run(f"create database {db.quote_ident(name)}")
    settings = Settings(
        ingestion_bucket=f"ingestion-{tag}",
        processed_bucket=f"processed-{tag}",
        totesys_dsn=f"postgresql://{PG_SUPERUSER}@/{names[0]}?host={sock}&port={PG_PORT}",
        warehouse_dsn=f"postgresql://{PG_SUPERUSER}@/{names[1]}?host={sock}&port={PG_PORT}",
        alert_topic_arn=env["ALERT_TOPIC_ARN"],
        aws_endpoint_url=env["AWS_ENDPOINT_URL"],
        region=REGION,
    )
    s3 = settings.client("s3")
    for bucket in (settings.ingestion_bucket, settings.processed_bucket):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return Isolated(settings, names[0], names[1], sock)


@pytest.fixture
def isolated(stack: LocalStack, dbt_parse_cache: Path | None) -> Iterator[Isolated]:
    """Fresh empty totesys and warehouse databases and buckets for one test."""
    admin = _admin(stack)
    yield _fresh_isolation(stack, admin)
    for name in DATABASES:
        admin.run(f"drop database if exists {db.quote_ident(name)} with (force)")
    admin.close()


@pytest.fixture(scope="session")
def templates(
    stack: LocalStack, dbt_parse_cache: Path | None, tmp_path_factory: pytest.TempPathFactory
) -> Templates:
    """The worker's prepared states (tests/support/templates.py), each built on first use."""

    def build(name: str, builder: Callable[[Isolated, Path], None]) -> Template:
        admin = _admin(stack)
        try:
            built = _fresh_isolation(stack, admin)
            work_dir = tmp_path_factory.mktemp(f"template-{name}") / "runs"
            builder(built, work_dir)
            databases = freeze(admin, name, list(DATABASES))
        finally:
            admin.close()
        buckets = (
            (built.settings.ingestion_bucket, "ingestion"),
            (built.settings.processed_bucket, "processed"),
        )
        return Template(name, databases, buckets, work_dir)

    return Templates(build)


@pytest.fixture
def from_template(
    isolated: Isolated, templates: Templates, stack: LocalStack
) -> Callable[..., Isolated]:
    """`from_template(name, builder, work_dir=None)`: this test's isolation holding a copy of
    what `builder(isolated, work_dir)` built once for the worker (its databases, both buckets'
    objects, and the work folder into `work_dir`). Call it before opening any connection."""

    def restore(
        name: str, builder: Callable[[Isolated, Path], None], work_dir: Path | None = None
    ) -> Isolated:
        template = templates.get(name, builder)
        admin = _admin(stack)
        try:
            copy_databases(admin, template)
        finally:
            admin.close()
        s3 = isolated.s3()
        targets = {
            "ingestion": isolated.settings.ingestion_bucket,
            "processed": isolated.settings.processed_bucket,
        }
        for bucket, role in template.buckets:
            copy_bucket(s3, bucket, targets[role])
        if work_dir is not None:
            copy_work_dir(template, work_dir)
        return isolated

    return restore


@pytest.fixture
def aws_endpoint(stack: LocalStack) -> str:
    return stack.env()["AWS_ENDPOINT_URL"]


@pytest.fixture
def sns_queue(stack: LocalStack, isolated: Isolated) -> Iterator[tuple[str, str]]:
    """A fresh SNS topic with an SQS queue subscribed: (topic_arn, queue_url), to read alerts."""
    endpoint = stack.env()["AWS_ENDPOINT_URL"]
    tag = uuid.uuid4().hex[:8]
    sns = boto3.client("sns", region_name=REGION, endpoint_url=endpoint)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
    topic = sns.create_topic(Name=f"alerts-{tag}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"alerts-{tag}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    yield topic, queue_url
