"""`totes verify` on the real local stack: after one cycle the marts match totesys; drift of each
kind planted by hand (a missing row, an extra row, a changed value, a silent update) is found,
named by table, kind and example key, and exits non-zero; a change made after the cycle is in
flight, not drift; the check is read-only on both sides, takes only ACCESS SHARE locks, never
makes a writer wait, and gives up rather than queue behind DDL.

One seeded totesys and one cycle serve the whole module (a cycle is the slow part): each test
plants its drift, checks, and puts everything back, and the clean check runs first and last.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

import boto3
import pg8000
import pytest
from rich.console import Console

from infra.local.stack import PG_PORT, PG_SUPERUSER, REGION, LocalStack
from infra.local.totesys import seed
from infra.local.totesys.schema import TOTESYS_TABLES
from ingest.extract import ExtractOptions
from runtime import db
from runtime.config import Settings
from totes import console, cycle
from verify import handler
from verify.snapshot import Limits, read_only_snapshot
from verify.verify import (
    KIND_LABELS,
    TableCheck,
    VerifyOptions,
    VerifyResult,
    run_verify,
    settle,
)

# One worker runs the module: its tests share one seeded and built stack (`built`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="verify")]
READ_ONLY_TRANSACTION = "25006"
LOCK_NOT_AVAILABLE = "55P03"


@dataclass
class Built:
    """A seeded totesys and a warehouse one cycle has built, for this module only."""

    settings: Settings
    socket_dir: str
    totesys_db: str
    warehouse_db: str

    def totesys(self) -> pg8000.native.Connection:
        return db.connect(self.settings.totesys_dsn or "")

    def warehouse(self) -> pg8000.native.Connection:
        return db.connect(self.settings.warehouse_dsn or "")

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "TOTESYS_DSN": self.settings.totesys_dsn or "",
            "WAREHOUSE_DSN": self.settings.warehouse_dsn or "",
            "WAREHOUSE_HOST": self.socket_dir,
            "WAREHOUSE_PORT": str(PG_PORT),
            "WAREHOUSE_USER": PG_SUPERUSER,
            "WAREHOUSE_PASSWORD": "",
            "WAREHOUSE_DB": self.warehouse_db,
            "INGESTION_BUCKET": self.settings.ingestion_bucket,
            "PROCESSED_BUCKET": self.settings.processed_bucket,
            "ALERT_TOPIC_ARN": self.settings.alert_topic_arn or "",
            "AWS_ENDPOINT_URL": self.settings.aws_endpoint_url or "",
            **extra,
        }


@pytest.fixture(scope="module")
def built(stack: LocalStack) -> Iterator[Built]:
    env = stack.env()
    worker = uuid.uuid4().hex[:8]
    names = (f"totesys_verify_{worker}", f"warehouse_verify_{worker}")
    sock = str(stack.socket_dir)
    admin = db.connect(f"postgresql://{PG_SUPERUSER}@/postgres?host={sock}&port={PG_PORT}")
    for name in names:
        admin.run(f"create database {db.quote_ident(name)}")
    settings = Settings(
        ingestion_bucket=f"ingestion-{worker}",
        processed_bucket=f"processed-{worker}",
        totesys_dsn=f"postgresql://{PG_SUPERUSER}@/{names[0]}?host={sock}&port={PG_PORT}",
        warehouse_dsn=f"postgresql://{PG_SUPERUSER}@/{names[1]}?host={sock}&port={PG_PORT}",
        alert_topic_arn=env["ALERT_TOPIC_ARN"],
        aws_endpoint_url=env["AWS_ENDPOINT_URL"],
        region=REGION,
    )
    s3 = settings.client("s3")
    for bucket in (settings.ingestion_bucket, settings.processed_bucket):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    here = Built(settings, sock, *names)
    conn = here.totesys()
    try:
        seed(conn, scale=0.05, end=date(2024, 11, 1))
    finally:
        conn.close()
    result = cycle.run_cycle(settings, steps=cycle.default_steps(skip_publish=True), dbt_docs=False)
    assert result.ok, result.describe()
    yield here
    for name in names:
        admin.run(f"drop database if exists {db.quote_ident(name)} with (force)")
    admin.close()


def verify(built: Built, **options: object) -> VerifyResult:
    return run_verify(built.settings, options=VerifyOptions(**options))  # type: ignore[arg-type]


def by_table(result: VerifyResult) -> dict[str, object]:
    return {t.table.split(" + ")[0]: t for t in result.tables}


def run(conn: pg8000.native.Connection, sql: str, **params: object) -> list:
    return conn.run(sql, **params)


def source_count(built: Built, table: str) -> int:
    conn = built.totesys()
    try:
        return run(conn, f'select count(*) from public."{table}"')[0][0]
    finally:
        conn.close()


def assert_clean(built: Built) -> VerifyResult:
    result = verify(built)
    assert result.ok, result.describe()
    return result


# ---- a clean warehouse -----------------------------------------------------------------------


def test_after_a_cycle_every_table_matches_and_every_source_table_is_covered(built):
    result = assert_clean(built)

    assert result.exit_code == 0
    covered = {name for t in result.tables for name in t.table.split(" + ")}
    assert covered == set(TOTESYS_TABLES)
    for check in result.tables:
        own = check.table.split(" + ")[0]
        assert check.source_rows == check.mart_rows == source_count(built, own), check.table
        assert check.in_flight == 0
    assert result.built_seq == 1


# ---- drift of each kind --------------------------------------------------------------------------


def test_a_row_the_pipeline_never_shipped_is_a_missing_row(built):
    """Inserted with a `last_updated` long before the watermark: no extract will pick it up."""
    src = built.totesys()
    try:
        run(
            src,
            "insert into public.address (address_id, address_line_1, city, postal_code, "
            "country, phone, created_at, last_updated) values (9001, '1 Lost Lane', 'Leeds', "
            "'LS1', 'UK', '0113', '2020-01-01', '2020-01-01')",
        )
        result = verify(built)
        address = by_table(result)["address"]
        assert not result.ok and result.exit_code == 1
        assert address.counts["missing"] == 1 and address.examples["missing"] == (9001,)
        assert address.source_rows == address.mart_rows + 1
        assert "1 missing row (e.g. 9001)" in address.describe()
        assert [t.table for t in result.drifting] == ["address"]
    finally:
        run(src, "delete from public.address where address_id = 9001")
        src.close()


def test_a_row_deleted_in_the_source_is_an_extra_row_in_the_warehouse(built):
    src = built.totesys()
    try:
        [row] = run(src, "select * from public.payment where payment_id = 7")
        run(src, "delete from public.payment where payment_id = 7")
        result = verify(built)
        payment = by_table(result)["payment"]
        assert payment.counts["extra"] == 1 and payment.examples["extra"] == (7,)
        assert payment.mart == "fact_payment_current"
        assert "1 extra row in warehouse (e.g. 7)" in result.describe()
    finally:
        marks = ", ".join(f":v{i}" for i in range(len(row)))
        run(
            src,
            f"insert into public.payment values ({marks})",
            **{f"v{i}": v for i, v in enumerate(row)},
        )
        src.close()
    assert_clean(built)


def test_a_value_the_marts_hold_wrongly_is_a_changed_value(built):
    wh = built.warehouse()
    try:
        [[city]] = run(wh, "select city from marts.dim_location where location_id = 3")
        [[record, quantity]] = run(
            wh,
            "select purchase_record_id, item_quantity from marts.fact_purchase_order_current "
            "where purchase_order_id = 42",
        )
        run(wh, "update marts.dim_location set city = 'Nowhere' where location_id = 3")
        run(
            wh,
            "update marts.fact_purchase_order set item_quantity = item_quantity + 1 "
            "where purchase_record_id = :r",
            r=record,
        )
        result = verify(built)
        found = by_table(result)
        assert found["address"].counts["changed"] == 1
        assert found["address"].examples["changed"] == (3,)
        assert found["purchase_order"].counts["changed"] == 1
        assert found["purchase_order"].examples["changed"] == (42,)
        # dim_counterparty carries addresses too, from the source: unchanged there.
        assert found["counterparty"].ok
        assert {t.table.split(" + ")[0] for t in result.drifting} == {"address", "purchase_order"}
    finally:
        run(wh, "update marts.dim_location set city = :c where location_id = 3", c=city)
        run(
            wh,
            "update marts.fact_purchase_order set item_quantity = :q where purchase_record_id = :r",
            q=quantity,
            r=record,
        )
        wh.close()
    assert_clean(built)


def test_a_change_that_did_not_move_last_updated_is_a_silent_update(built):
    """The pipeline extracts by `last_updated`: this change never ships. A renamed department
    without a new stamp reaches dim_staff through every member of it."""
    src = built.totesys()
    try:
        [[units]] = run(src, "select units_sold from public.sales_order where sales_order_id = 5")
        [[name]] = run(src, "select department_name from public.department where department_id = 2")
        staff = sorted(
            k for [k] in run(src, "select staff_id from public.staff where department_id = 2")
        )
        run(
            src,
            "update public.sales_order set units_sold = units_sold + 1 where sales_order_id = 5",
        )
        run(src, "update public.department set department_name = 'Quietly' where department_id = 2")

        result = verify(built, examples=100)
        found = by_table(result)
        assert found["sales_order"].counts == {"missing": 0, "extra": 0, "changed": 0, "silent": 1}
        assert found["sales_order"].examples["silent"] == (5,)
        assert "1 silent update (e.g. 5)" in found["sales_order"].describe()
        assert found["staff"].counts["silent"] == len(staff) > 0
        assert list(found["staff"].examples["silent"]) == staff
    finally:
        run(src, "update public.sales_order set units_sold = :u where sales_order_id = 5", u=units)
        run(
            src, "update public.department set department_name = :n where department_id = 2", n=name
        )
        src.close()
    assert_clean(built)


def test_a_change_made_after_the_cycle_is_in_flight_not_drift(built):
    src = built.totesys()
    try:
        [[name, stamp]] = run(
            src, "select design_name, last_updated from public.design where design_id = 4"
        )
        run(
            src,
            "update public.design set design_name = 'Fresh', last_updated = now() "
            "where design_id = 4",
        )
        result = verify(built)
        design = by_table(result)["design"]
        assert result.ok, result.describe()
        assert design.in_flight == 1 and design.drift == 0
    finally:
        run(
            src,
            "update public.design set design_name = :n, last_updated = :t where design_id = 4",
            n=name,
            t=stamp,
        )
        src.close()


# ---- settling: drift the next cycle repairs is not drift ---------------------------------------


def test_drift_the_next_cycle_repairs_settles_away_and_lasting_drift_stays(built):
    """dim_location is merged from every address's latest version whenever addresses change,
    so a wrong city there is repaired by the next cycle that brings an address; a fact version
    is never rewritten, so a wrong one stays."""
    wh, src = built.warehouse(), built.totesys()
    try:
        [[city]] = run(wh, "select city from marts.dim_location where location_id = 5")
        [[record, units]] = run(
            wh,
            "select sales_record_id, units_sold from marts.fact_sales_order_current "
            "where sales_order_id = 13",
        )
        run(wh, "update marts.dim_location set city = 'Nowhere' where location_id = 5")
        run(
            wh,
            "update marts.fact_sales_order set units_sold = units_sold + 1 "
            "where sales_record_id = :r",
            r=record,
        )
        # Another address moves: in flight now, and what makes the next cycle build dim_location.
        run(
            src,
            "update public.address set phone = '0113 496 0999', last_updated = now() "
            "where address_id = 6",
        )
        first = verify(built)
        assert {t.table.split(" + ")[0] for t in first.drifting} == {"address", "sales_order"}
        assert by_table(first)["address"].examples["changed"] == (5,)
        assert by_table(first)["address"].in_flight == 1

        # The extract's watermark trails the source's clock by its margin: a cycle started
        # within it could not reach the first check's clock, and settling would wait for the next.
        time.sleep(ExtractOptions().margin_s)
        again = cycle.run_cycle(
            built.settings, steps=cycle.default_steps(skip_publish=True), dbt_docs=False
        )
        assert again.ok, again.describe()
        settled = settle(built.settings, first, VerifyOptions(settle_s=120, settle_poll_s=0.5))
    finally:
        run(wh, "update marts.dim_location set city = :c where location_id = 5", c=city)
        run(
            wh,
            "update marts.fact_sales_order set units_sold = :u where sales_record_id = :r",
            u=units,
            r=record,
        )
        wh.close()
        src.close()
    assert settled.settled is True
    assert [t.table for t in settled.drifting] == ["sales_order"]
    [orders] = settled.drifting
    assert orders.counts["changed"] == 1 and orders.examples["changed"] == (13,)
    assert by_table(settled)["address"].ok
    assert_clean(built)


def test_without_a_cycle_settling_gives_up_and_reports_the_first_check(built):
    src = built.totesys()
    try:
        [[units]] = run(src, "select units_sold from public.sales_order where sales_order_id = 15")
        run(
            src,
            "update public.sales_order set units_sold = units_sold + 1 where sales_order_id = 15",
        )
        result = verify(built, settle_s=1, settle_poll_s=0.2)
    finally:
        run(src, "update public.sales_order set units_sold = :u where sales_order_id = 15", u=units)
        src.close()
    assert result.settled is False
    assert [t.table for t in result.drifting] == ["sales_order"]
    assert result.drifting[0].examples["silent"] == (15,)


# ---- what people see -------------------------------------------------------------------------


def test_totes_verify_prints_what_differs_and_exits_non_zero(built, tmp_path):
    src = built.totesys()
    try:
        [[units]] = run(src, "select units_sold from public.sales_order where sales_order_id = 9")
        run(
            src,
            "update public.sales_order set units_sold = units_sold + 1 where sales_order_id = 9",
        )
        env = built.env(TOTES_HOME=str(tmp_path), COLUMNS="250")
        drift = subprocess.run(
            [sys.executable, "-m", "totes.cli", "verify"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        as_json = subprocess.run(
            [sys.executable, "-m", "totes.cli", "verify", "--json", "--table", "sales_order"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        run(src, "update public.sales_order set units_sold = :u where sales_order_id = 9", u=units)
        src.close()
    assert drift.returncode == 1, drift.stderr
    assert "sales_order" in drift.stdout and "fact_sales_order_current" in drift.stdout
    assert "silent update: 9" in drift.stdout
    assert "DRIFT in 1 table(s)" in drift.stdout
    [line] = [json.loads(x) for x in as_json.stdout.splitlines() if x.startswith('{"run_id"')]
    assert as_json.returncode == 1
    assert [(t["table"], t["silent"], t["examples"]) for t in line["tables"]] == [
        ("sales_order", 1, {"silent": [9]})
    ]

    clean = subprocess.run(
        [sys.executable, "-m", "totes.cli", "verify"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no drift" in clean.stdout


def test_the_table_names_each_kind_with_its_keys():
    payment = TableCheck(
        "payment",
        "fact_payment_current",
        10,
        11,
        {"missing": 0, "extra": 2, "changed": 1, "silent": 0},
        {"extra": (7, 8), "changed": (3,)},
    )
    at = datetime(2024, 1, 1)
    out = Console(file=io.StringIO(), width=250)
    console.verify_table(VerifyResult("r1", at, at, (payment,)), out)
    printed = out.file.getvalue()
    assert f"{KIND_LABELS['extra']}: 7, 8" in printed
    assert f"{KIND_LABELS['changed']}: 3" in printed
    assert "DRIFT in 1 table(s)" in printed


# ---- read-only, and never in the business's way -------------------------------------------------


def test_the_snapshot_refuses_writes_on_both_sides(built):
    for connect, table in (
        (built.totesys, "public.currency"),
        (built.warehouse, "marts.dim_currency"),
    ):
        conn = connect()
        try:
            with (
                read_only_snapshot(conn),
                pytest.raises(pg8000.exceptions.DatabaseError) as refused,
            ):
                conn.run(f"delete from {table}")
            assert refused.value.args[0]["C"] == READ_ONLY_TRANSACTION
            [[isolation]] = conn.run("show transaction_isolation")  # back outside it
            assert isolation == "read committed"
        finally:
            conn.close()


def test_a_verification_holds_only_access_share_and_never_makes_a_writer_wait(built):
    """The test holds dim_design (the fourth check) so verify is caught mid-run, with three
    tables' snapshots read; meanwhile writers on those source tables go straight through."""
    wh_holder, src_writer, watcher = built.warehouse(), built.totesys(), built.totesys()
    wh_holder.run("start transaction")
    wh_holder.run("lock table marts.dim_design in access exclusive mode")
    outcome: dict[str, object] = {}

    def verify_in_background() -> None:
        try:
            outcome["result"] = verify(built, limits=Limits(lock_timeout_s=60))
        except Exception as err:  # reported by the assertion below
            outcome["error"] = err

    thread = threading.Thread(target=verify_in_background)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            [[waiting]] = watcher.run(
                "select count(*) from pg_catalog.pg_stat_activity where application_name = "
                "'totes-verify' and wait_event_type = 'Lock' and datname = :wh",
                wh=built.warehouse_db,
            )
            if waiting:
                break
            time.sleep(0.1)
        else:
            pytest.fail("verify never reached dim_design")
        # Every lock verify holds or asks for, in either database, is ACCESS SHARE.
        modes = watcher.run(
            "select distinct l.mode from pg_catalog.pg_locks l "
            "join pg_catalog.pg_stat_activity a on a.pid = l.pid "
            "where a.application_name = 'totes-verify' and l.locktype = 'relation' "
            "and a.datname in (:src, :wh)",
            src=built.totesys_db,
            wh=built.warehouse_db,
        )
        assert modes == [["AccessShareLock"]]
        # Source tables it has read so far, still locked by its snapshot's transaction:
        held = {
            name
            for [name] in watcher.run(
                "select c.relname from pg_catalog.pg_locks l "
                "join pg_catalog.pg_stat_activity a on a.pid = l.pid "
                "join pg_catalog.pg_class c on c.oid = l.relation "
                "where a.application_name = 'totes-verify' and l.granted "
                "and a.datname = current_database() and c.relkind = 'r'"
            )
        }
        assert held >= {"address", "counterparty", "currency", "design"}
        # A writer on a table verify has read (and holds a lock on) does not wait at all.
        src_writer.run("set lock_timeout = '1s'")
        src_writer.run("start transaction")
        src_writer.run(
            "update public.currency set last_updated = last_updated where currency_id = 1"
        )
        src_writer.run(
            "insert into public.address (address_id, address_line_1, city, postal_code, "
            "country, phone, last_updated) values (9002, 'x', 'y', 'z', 'c', 'p', now())"
        )
        src_writer.run("commit")
    finally:
        wh_holder.run("rollback")
        thread.join(timeout=300)
        src_writer.run("delete from public.address where address_id = 9002")
        for conn in (wh_holder, src_writer, watcher):
            conn.close()
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    # Its snapshot was taken before the writes: it saw neither, and found nothing to report.
    assert result.ok, result.describe()


def test_a_verification_behind_ddl_gives_up_instead_of_queueing(built, tmp_path):
    holder = built.warehouse()
    holder.run("start transaction")
    holder.run("lock table marts.dim_currency in access exclusive mode")
    try:
        with pytest.raises(pg8000.exceptions.DatabaseError) as refused:
            verify(built, limits=Limits(lock_timeout_s=0.5))
        assert refused.value.args[0]["C"] == LOCK_NOT_AVAILABLE
        done = subprocess.run(
            [sys.executable, "-m", "totes.cli", "verify"],
            env=built.env(TOTES_HOME=str(tmp_path)),
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        holder.run("rollback")
        holder.close()
    assert done.returncode == 2, done.stdout + done.stderr
    assert "lock" in done.stderr


# ---- in AWS: the scheduled Lambda, and locally `totes run --verify` -----------------------------


@pytest.fixture
def alert_queue(built: Built) -> Iterator[tuple[str, str]]:
    endpoint = built.settings.aws_endpoint_url
    tag = uuid.uuid4().hex[:8]
    sns = boto3.client("sns", region_name=REGION, endpoint_url=endpoint)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
    topic = sns.create_topic(Name=f"verify-alerts-{tag}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"verify-alerts-{tag}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    yield topic, queue_url


def received(built: Built, queue_url: str) -> list[dict]:
    sqs = built.settings.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=5
    ).get("Messages", [])
    envelopes = [json.loads(m["Body"]) for m in messages]
    return [{"subject": e.get("Subject"), **json.loads(e["Message"])} for e in envelopes]


def test_the_lambda_alerts_drift_like_a_failed_cycle_and_stays_quiet_when_clean(
    built, alert_queue, monkeypatch
):
    topic, queue_url = alert_queue
    environment = built.env(ALERT_TOPIC_ARN=topic, TOTES_STAGE="test", VERIFY_SETTLE_SECONDS="0")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    clean = handler.lambda_handler({"trigger": "verify-schedule"}, None)
    assert clean["ok"] is True and clean["alert_message_id"] is None
    assert received(built, queue_url) == []

    src = built.totesys()
    try:
        [[order]] = run(
            src, "select sales_order_id from public.transaction where transaction_id = 3"
        )
        # What an ON DELETE SET NULL cascade does: a change without a new last_updated.
        run(src, "update public.transaction set sales_order_id = null where transaction_id = 3")
        drift = handler.lambda_handler({"trigger": "verify-schedule"}, None)
    finally:
        run(
            src,
            "update public.transaction set sales_order_id = :o where transaction_id = 3",
            o=order,
        )
        src.close()
    assert drift["ok"] is False and drift["drifting"] == ["transaction"]
    [alert] = received(built, queue_url)
    assert alert["alert"] == "totes-cycle-failed"
    assert alert["failed_step"] == "verify" and alert["stage"] == "test"
    assert "verify" in alert["subject"]
    [table] = alert["tables"]
    assert table["table"] == "transaction" and table["silent"] == 1
    assert table["examples"] == {"silent": [3]}
    assert "transaction" in alert["cause"]
    assert_clean(built)


def test_totes_run_verify_prints_the_verdict_and_alerts_drift(built, alert_queue, tmp_path):
    """A fact row the warehouse holds wrongly: a cycle appends new versions and never rewrites
    an old one, so the drift outlives the cycle and its verification finds it."""
    topic, queue_url = alert_queue
    wh = built.warehouse()
    try:
        [[record, units]] = run(
            wh,
            "select sales_record_id, units_sold from marts.fact_sales_order_current "
            "where sales_order_id = 11",
        )
        run(
            wh,
            "update marts.fact_sales_order set units_sold = units_sold + 1 "
            "where sales_record_id = :r",
            r=record,
        )
        done = subprocess.run(
            [sys.executable, "-m", "totes.cli", "run", "--skip-publish", "--verify"],
            env=built.env(TOTES_HOME=str(tmp_path), ALERT_TOPIC_ARN=topic, COLUMNS="250"),
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
    finally:
        run(
            wh,
            "update marts.fact_sales_order set units_sold = :u where sales_record_id = :r",
            u=units,
            r=record,
        )
        wh.close()
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ok in" in done.stderr  # the cycle itself succeeded
    assert "DRIFT in 1 table(s)" in done.stderr and "changed value: 11" in done.stderr
    [alert] = received(built, queue_url)
    assert alert["failed_step"] == "verify"
    assert [t["table"] for t in alert["tables"]] == ["sales_order"]
    assert_clean(built)


# ---- with delete capture: what a cycle ships is no drift (last: it deletes for good) ---------


def test_deletions_a_cycle_has_shipped_are_not_drift(built):
    """The deleted payment leaves fact_payment_current; the deleted design stays in dim_design
    (facts may refer to it) and marts.deleted_members lists it, so its check leaves it out."""
    src = built.totesys()
    try:
        [[design]] = run(
            src,
            "select min(design_id) from public.design as d where not exists "
            "(select 1 from public.sales_order as o where o.design_id = d.design_id)",
        )
        run(src, "delete from public.payment where payment_id = 21")
        run(src, "delete from public.design where design_id = :d", d=design)
    finally:
        src.close()
    before = by_table(verify(built))
    assert before["payment"].examples["extra"] == (21,)
    assert before["design"].examples["extra"] == (design,)

    shipped = cycle.run_cycle(
        built.settings, steps=cycle.default_steps(skip_publish=True), dbt_docs=False
    )
    assert shipped.ok, shipped.describe()

    result = assert_clean(built)
    wh = built.warehouse()
    try:
        [[kept]] = run(wh, "select count(*) from marts.dim_design where design_id = :d", d=design)
        listed = run(
            wh,
            "select dimension from marts.deleted_members where source_table = 'design' "
            "and member_key = :d and reinserted_at is null",
            d=design,
        )
    finally:
        wh.close()
    assert kept == 1 and listed == [["dim_design"]]
    found = by_table(result)
    assert found["design"].mart_rows == found["design"].source_rows
    assert found["payment"].mart_rows == found["payment"].source_rows
