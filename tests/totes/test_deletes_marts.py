"""Deletions in the marts and the lake, through whole cycles on the real stack.

A row deleted in `totesys` leaves its fact's `*_current` view, ends its last version in the
fact's history view (`is_deleted`, `valid_to` = when the deletion was seen), stays in its
dimension and is listed in `marts.deleted_members`; a key inserted again starts a new history;
`marts.deletions` reaches the processed bucket exactly once, never overwriting; a cycle killed
at any step around a deletion leaves the next cycle to record it once. A warehouse whose
intermediate tables were built before versions carried a row hash converges without a full
refresh.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.cycles import (
    PATIENCE_S,
    alive,
    dbt_build_processes,
    hold_raw_tables,
    totes_run,
    wait_until,
    waiting_on,
)

from infra.local.totesys import seed
from infra.local.totesys.schema import PRIMARY_KEYS, TOTESYS_TABLES
from infra.local.totesys.simulate import simulate
from publish import marts
from runtime import lake
from runtime.db import quote_ident
from totes import cycle, ops

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[1]
SEED_END = date(2024, 11, 1)
EXTRACT_MARGIN_S = 1.2  # the extract leaves out rows written in the last second before it runs
FACTS = {  # source table → (fact, natural key)
    "sales_order": ("fact_sales_order", "sales_order_id"),
    "purchase_order": ("fact_purchase_order", "purchase_order_id"),
    "payment": ("fact_payment", "payment_id"),
}
# children before the rows they refer to
MEMBER_TABLES = ("counterparty", "address", "staff", "department", "currency", "design",
                 "payment_type")  # fmt: skip
DIMENSION_OF = {  # source table → the dimension its members are in (department: none)
    "address": ("dim_location", "location_id"),
    "counterparty": ("dim_counterparty", "counterparty_id"),
    "currency": ("dim_currency", "currency_id"),
    "department": (None, None),
    "design": ("dim_design", "design_id"),
    "payment_type": ("dim_payment_type", "payment_type_id"),
    "staff": ("dim_staff", "staff_id"),
    "transaction": ("dim_transaction", "transaction_id"),
}


# ---- the source -------------------------------------------------------------------------------


def seeded(isolated) -> None:
    conn = isolated.totesys()
    try:
        seed(conn, scale=0.02, end=SEED_END)
    finally:
        conn.close()


def settled(conn) -> None:
    """Wait until the database clock is past the extract's margin after every write so far,
    so the next cycle's window holds them all."""
    [[start]] = conn.run("select clock_timestamp()")
    while conn.run(
        "select clock_timestamp() < cast(:t as timestamptz) + make_interval(secs => :s)",
        t=start,
        s=EXTRACT_MARGIN_S,
    )[0][0]:
        time.sleep(0.05)


def new_members(conn) -> dict[str, int]:
    """One new member of every dimension source that nothing refers to yet (so the foreign keys
    let it be deleted): its key per table."""
    now = "localtimestamp(3)"
    ids: dict[str, int] = {}
    [[ids["address"]]] = conn.run(
        "insert into address (address_line_1, city, postal_code, country, phone, last_updated)"
        f" values ('1 Test Row', 'Leeds', 'LS1 1AA', 'United Kingdom', '0113 000', {now})"
        " returning address_id"
    )
    [[ids["counterparty"]]] = conn.run(
        "insert into counterparty (counterparty_legal_name, legal_address_id, last_updated)"
        f" values ('Deleted Soon Ltd', :a, {now}) returning counterparty_id",
        a=ids["address"],
    )
    [[ids["currency"]]] = conn.run(
        f"insert into currency (currency_code, last_updated) values ('CHF', {now})"
        " returning currency_id"
    )
    [[ids["department"]]] = conn.run(
        "insert into department (department_name, location, manager, last_updated)"
        f" values ('Short-Lived', 'Leeds', 'Nobody', {now}) returning department_id"
    )
    [[ids["staff"]]] = conn.run(
        "insert into staff (first_name, last_name, department_id, email_address, last_updated)"
        f" values ('Tem', 'Porary', :d, 'tem@terrifictotes.com', {now}) returning staff_id",
        d=ids["department"],
    )
    [[ids["design"]]] = conn.run(
        "insert into design (design_name, file_location, file_name, last_updated)"
        f" values ('Ephemeral', '/designs', 'ephemeral.json', {now}) returning design_id"
    )
    [[ids["payment_type"]]] = conn.run(
        "insert into payment_type (payment_type_name, last_updated)"
        f" values ('SALES_RECEIPT', {now}) returning payment_type_id"
    )
    return ids


def the_new_members(conn) -> dict[str, int]:
    """The keys `new_members` gave (its rows are the newest of their tables until the test
    writes)."""
    return {
        table: conn.run(
            f"select max({quote_ident(PRIMARY_KEYS[table])}) from {quote_ident(table)}"
        )[0][0]
        for table in MEMBER_TABLES
    }


def delete_members(conn, ids: dict[str, int]) -> None:
    """Delete the members `new_members` made, children before the rows they refer to."""
    for table in MEMBER_TABLES:
        conn.run(
            f"delete from {quote_ident(table)} where {quote_ident(PRIMARY_KEYS[table])} = :k",
            k=ids[table],
        )


def order_chain(conn, kind: str, skip: int = 0) -> tuple[int, int, int]:
    """(order id, transaction id, payment id) of a `kind` ('sales' or 'purchase') order."""
    [[order_id, transaction_id, payment_id]] = conn.run(
        f'select t.{kind}_order_id, t.transaction_id, p.payment_id from "transaction" t'
        " join payment p on p.transaction_id = t.transaction_id"
        f" where t.{kind}_order_id is not null order by t.transaction_id limit 1 offset :skip",
        skip=skip,
    )
    return order_id, transaction_id, payment_id


def delete_chain(conn, kind: str, order_id: int, transaction_id: int, payment_id: int) -> None:
    """An order deleted as the foreign keys allow: its payment, its transaction, the order."""
    conn.run("delete from payment where payment_id = :p", p=payment_id)
    conn.run('delete from "transaction" where transaction_id = :t', t=transaction_id)
    conn.run(f"delete from {kind}_order where {kind}_order_id = :o", o=order_id)


def source_keys(conn, table: str) -> set[int]:
    key = quote_ident(PRIMARY_KEYS[table])
    return {k for [k] in conn.run(f"select {key} from {quote_ident(table)}")}


# ---- the warehouse and the lake ---------------------------------------------------------------


def cycle_ok(settings, runs: Path):
    result = cycle.run_cycle(settings, work_dir=runs, dbt_docs=False)
    assert result.ok, result.describe()
    return result


def deletions(warehouse) -> dict[tuple[str, int], datetime]:
    """marts.deletions as (table, key) → deleted_at; fails on a deletion recorded twice."""
    rows = warehouse.run("select source_table, source_key, deleted_at from marts.deletions")
    counted = Counter((t, k) for t, k, _ in rows)
    assert [d for d, n in counted.items() if n > 1] == [], "a deletion recorded twice"
    return {(t, k): at for t, k, at in rows}


def history(warehouse, table: str, key: int) -> list[dict]:
    fact, natural = FACTS[table]
    rows = warehouse.run(
        f"select valid_from, valid_to, is_deleted from marts.{fact}_history"
        f" where {quote_ident(natural)} = :k order by valid_from",
        k=key,
    )
    return [{"valid_from": f, "valid_to": t, "is_deleted": d} for f, t, d in rows]


def lake_rows(isolated, table: str) -> list[dict]:
    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    rows: list[dict] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"marts/{table}/"
    ):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            rows += pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def object_versions(isolated) -> Counter:
    """Every object version in the processed bucket (a key written twice counts 2)."""
    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    versions: Counter = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            versions[version["Key"]] += 1
        for marker in page.get("DeleteMarkers", []):
            versions[marker["Key"]] += 100  # a delete is as bad as an overwrite
    return versions


def versioned(isolated) -> None:
    """Bucket versioning on: any overwrite would leave a second version behind."""
    isolated.s3().put_bucket_versioning(
        Bucket=isolated.settings.processed_bucket,
        VersioningConfiguration={"Status": "Enabled"},
    )


def assert_the_lake_holds_each_deletion_once(isolated) -> None:
    """The lake's `deletions` are the warehouse's, each once; no object was written twice."""
    key = marts.DELETIONS["deletions"]
    in_lake = Counter(row[key] for row in lake_rows(isolated, "deletions"))
    warehouse = isolated.warehouse()
    try:
        in_marts = [k for [k] in warehouse.run(f"select {key} from marts.deletions order by 1")]
    finally:
        warehouse.close()
    assert sorted(in_lake) == in_marts
    assert set(in_lake.values()) <= {1}, "a deletion published twice"
    assert set(object_versions(isolated).values()) == {1}, "an object written twice"


def assert_the_marts_equal_the_source(isolated) -> None:
    """Every `*_current` view holds exactly the source's keys at their latest `last_updated`;
    every dimension holds every source member, and only deleted members besides; each deletion
    is in raw once per (table, key) and once in marts.deletions; dim_transaction carries the
    source's order ids (a cascade's NULL included)."""
    totesys, warehouse = isolated.totesys(), isolated.warehouse()
    try:
        for table, (fact, natural) in FACTS.items():
            key = quote_ident(natural)
            source = totesys.run(f"select {key}, last_updated from {quote_ident(table)}")
            current = warehouse.run(
                f"select {key}, last_updated_date + last_updated_time from marts.{fact}_current"
            )
            assert sorted(map(tuple, current)) == sorted(map(tuple, source)), f"{fact}_current"
        still_deleted = {
            (t, k)
            for t, k in warehouse.run(
                "select source_table, member_key from marts.deleted_members"
                " where reinserted_at is null"
            )
        }
        for table, (dimension, member) in DIMENSION_OF.items():
            in_source = source_keys(totesys, table)
            gone = {k for t, k in still_deleted if t == table}
            assert not gone & in_source, f"{table}: a member listed as deleted is in the source"
            if dimension is None:
                continue
            held = {
                k for [k] in warehouse.run(f"select {quote_ident(member)} from marts.{dimension}")
            }
            assert held == in_source | gone, dimension
        raw = Counter(
            (t, k) for t, k in warehouse.run("select table_name, key from raw._deletions")
        )
        assert set(raw.values()) <= {1}, "a deletion loaded twice"
        assert set(raw) == set(deletions(warehouse))
        source_orders = totesys.run(
            'select transaction_id, sales_order_id, purchase_order_id from "transaction"'
        )
        held_orders = {
            t: (s, p)
            for t, s, p in warehouse.run(
                "select transaction_id, sales_order_id, purchase_order_id"
                " from marts.dim_transaction"
            )
        }
        for transaction_id, sales_order_id, purchase_order_id in source_orders:
            assert held_orders[transaction_id] == (sales_order_id, purchase_order_id)
    finally:
        totesys.close()
        warehouse.close()


def seeded_with_members_and_cycled(isolated, runs: Path) -> None:
    """The state most tests here start from: seeded, one unreferenced member in every dimension
    source (`new_members`), and a first clean cycle (publish included) into `runs`."""
    seeded(isolated)
    totesys = isolated.totesys()
    try:
        new_members(totesys)
        settled(totesys)
    finally:
        totesys.close()
    cycle_ok(isolated.settings, runs)


@pytest.fixture
def cycled(from_template, tmp_path):
    """This test's isolation after `seeded_with_members_and_cycled`, built once per worker;
    the first cycle's work folder is `tmp_path / "runs"`."""
    return from_template("deletes-cycled", seeded_with_members_and_cycled, tmp_path / "runs")


# ---- the tests --------------------------------------------------------------------------------


def test_a_deletion_in_each_of_the_eleven_tables_shows_in_the_marts_and_the_lake_once(
    isolated, tmp_path
):
    seeded(isolated)
    versioned(isolated)
    glue_database = f"marts_{uuid.uuid4().hex[:10]}"  # the Glue catalog outlives the test
    settings = isolated.settings.with_(glue_database=glue_database)
    runs = tmp_path / "runs"
    totesys = isolated.totesys()
    members = new_members(totesys)
    settled(totesys)
    cycle_ok(settings, runs)

    sales = order_chain(totesys, "sales")
    purchase = order_chain(totesys, "purchase")
    cascaded_order, cascaded_transaction, cascaded_payment = order_chain(totesys, "sales", 1)
    delete_chain(totesys, "sales", *sales)
    delete_chain(totesys, "purchase", *purchase)
    # ON DELETE SET NULL: the transaction stays, its sales_order_id becomes NULL, and its
    # last_updated does not move
    totesys.run("delete from sales_order where sales_order_id = :o", o=cascaded_order)
    delete_members(totesys, members)
    deleted = {
        **{(t, k): "fact" for t, k in (("sales_order", sales[0]), ("sales_order", cascaded_order),
                                       ("purchase_order", purchase[0]))},
        ("transaction", sales[1]): "member",
        ("transaction", purchase[1]): "member",
        ("payment", sales[2]): "fact",
        ("payment", purchase[2]): "fact",
        **{(t, k): "member" for t, k in members.items()},
    }  # fmt: skip
    assert {t for t, _ in deleted} == set(TOTESYS_TABLES)  # all eleven
    settled(totesys)
    totesys.close()

    second = cycle_ok(settings, runs)

    warehouse = isolated.warehouse()
    try:
        recorded = deletions(warehouse)
        assert set(recorded) == set(deleted)
        for (table, key), kind in deleted.items():
            if kind != "fact":
                continue
            versions = history(warehouse, table, key)
            assert versions, f"{table} {key} lost its history"
            *earlier, last = versions
            assert last == {
                "valid_from": last["valid_from"],
                "valid_to": recorded[(table, key)],
                "is_deleted": True,
            }, f"{table} {key}: its last version ends at the deletion"
            assert not any(v["is_deleted"] or v["valid_to"] is None for v in earlier)
            assert last["valid_from"] <= last["valid_to"]
        listed = {
            (t, k): (dimension, at, back)
            for dimension, t, k, at, back in warehouse.run(
                "select dimension, source_table, member_key, deleted_at, reinserted_at"
                " from marts.deleted_members"
            )
        }
        assert set(listed) == {d for d, kind in deleted.items() if kind == "member"}
        for (table, key), (dimension, at, back) in listed.items():
            assert dimension == DIMENSION_OF[table][0]
            assert (at, back) == (recorded[(table, key)], None)
        [[cascade_order_now]] = warehouse.run(
            "select sales_order_id from marts.dim_transaction where transaction_id = :t",
            t=cascaded_transaction,
        )
        assert cascade_order_now is None, "the ON DELETE SET NULL cascade reached dim_transaction"
        assert warehouse.run(
            "select count(*) from marts.fact_payment_current where payment_id = :p",
            p=cascaded_payment,
        ) == [[1]]
    finally:
        warehouse.close()
    assert_the_marts_equal_the_source(isolated)
    assert second.step("publish").status == "succeeded"
    assert_the_lake_holds_each_deletion_once(isolated)
    glue_tables = settings.client("glue").get_tables(DatabaseName=glue_database)["TableList"]
    assert "deletions" in {t["Name"] for t in glue_tables}

    cycle_ok(settings, runs)  # nothing new: nothing recorded or published again

    assert_the_lake_holds_each_deletion_once(isolated)
    assert len(lake_rows(isolated, "deletions")) == len(deleted)


def test_a_key_deleted_and_inserted_again_starts_a_new_history_after_its_deletion(cycled, tmp_path):
    isolated, runs = cycled, tmp_path / "runs"
    totesys = isolated.totesys()
    design_id = the_new_members(totesys)["design"]
    order_id, _, _ = order_chain(totesys, "sales")
    [row] = totesys.run(
        "select design_id, staff_id, counterparty_id, unit_price, currency_id,"
        " agreed_delivery_date, agreed_payment_date, agreed_delivery_location_id"
        " from sales_order where sales_order_id = :o",
        o=order_id,
    )
    totesys.run("delete from sales_order where sales_order_id = :o", o=order_id)
    totesys.run("delete from design where design_id = :d", d=design_id)
    settled(totesys)
    cycle_ok(isolated.settings, runs)
    warehouse = isolated.warehouse()
    assert warehouse.run(
        "select count(*) from marts.fact_sales_order_current where sales_order_id = :o", o=order_id
    ) == [[0]]

    # the same keys again, as a person restoring them would (new created_at, new last_updated)
    [[reinserted_at]] = totesys.run(
        "insert into sales_order (sales_order_id, created_at, last_updated, design_id, staff_id,"
        " counterparty_id, units_sold, unit_price, currency_id, agreed_delivery_date,"
        " agreed_payment_date, agreed_delivery_location_id) values (:o, localtimestamp(3),"
        " localtimestamp(3), :d, :s, :c, 4242, :p, :cur, :dd, :pd, :loc) returning last_updated",
        o=order_id, d=row[0], s=row[1], c=row[2], p=row[3], cur=row[4], dd=row[5], pd=row[6],
        loc=row[7],
    )  # fmt: skip
    totesys.run(
        "insert into design (design_id, design_name, file_location, file_name, last_updated)"
        " values (:d, 'Back Again', '/designs', 'back.json', :at)",
        d=design_id,
        at=reinserted_at,
    )
    settled(totesys)
    totesys.close()
    cycle_ok(isolated.settings, runs)

    [[deleted_at]] = warehouse.run(
        "select deleted_at from marts.deletions where source_table = 'sales_order'"
        " and source_key = :o",
        o=order_id,
    )
    versions = history(warehouse, "sales_order", order_id)
    assert [v["is_deleted"] for v in versions] == [True, False]
    before, after = versions
    assert before["valid_to"] == deleted_at
    assert after == {"valid_from": reinserted_at, "valid_to": None, "is_deleted": False}
    assert after["valid_from"] > before["valid_to"], "the new history starts after the deletion"
    assert warehouse.run(
        "select units_sold from marts.fact_sales_order_current where sales_order_id = :o",
        o=order_id,
    ) == [[4242]]
    assert warehouse.run(
        "select count(*) from marts.fact_sales_order where sales_order_id = :o", o=order_id
    ) == [[2]], "the deleted version stays in the fact"
    assert warehouse.run(
        "select reinserted_at from marts.deleted_members where source_table = 'design'"
        " and member_key = :d",
        d=design_id,
    ) == [[reinserted_at]]
    assert warehouse.run(
        "select design_name from marts.dim_design where design_id = :d", d=design_id
    ) == [["Back Again"]]
    warehouse.close()
    assert_the_marts_equal_the_source(isolated)


def killed_cycle(isolated, home: Path, step: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "support.killed_cycle", step],
        env={**isolated.env(), "TOTES_HOME": str(home), "PYTHONPATH": f"{TESTS}:{TESTS.parent}"},
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=False,
    )


def kill_mid_dbt(isolated, home: Path, log: Path) -> None:
    """`totes run` killed (-9) while its dbt build waits on the raw tables the test holds."""
    hold, dbt = isolated.warehouse(), []
    run = totes_run(isolated, home, log)
    try:
        dbt = wait_until(lambda: dbt_build_processes(run), "the cycle's dbt build")
        hold_raw_tables(hold)
        wait_until(lambda: waiting_on(hold), "dbt to wait on the raw tables")
        os.kill(run.pid, signal.SIGKILL)
        assert run.wait(timeout=60) == -signal.SIGKILL
        wait_until(lambda: not alive(dbt), "dbt to end with its parent", timeout_s=120)
    finally:
        run.kill()
        for process in alive(dbt):
            process.kill()
        hold.close()


@pytest.mark.parametrize("step", ["extract", "load", "dbt", "publish-deletions"])
def test_a_cycle_killed_around_a_deletion_leaves_the_next_to_record_it_once(
    isolated, tmp_path, step
):
    # not from the `cycled` template: its new payment type shares the name SALES_RECEIPT, and
    # `simulate` finds a payment type by name, so it wrote two payments for one transaction
    seeded(isolated)
    versioned(isolated)
    runs = tmp_path / "runs"
    cycle_ok(isolated.settings, runs)
    totesys = isolated.totesys()
    shipped = {t: source_keys(totesys, t) for t in TOTESYS_TABLES}
    # activity in several tables (the load dies at its third chunk) and deletions in four,
    # with a cascade onto a transaction that stays
    simulate(totesys, seed=11, deletes=7)
    cascaded_order, cascaded_transaction, _ = order_chain(totesys, "sales", 3)
    totesys.run("delete from sales_order where sales_order_id = :o", o=cascaded_order)
    settled(totesys)
    # the keys the warehouse had that the source no longer has (an order the burst made and
    # deleted again never reached the warehouse: nothing to record)
    gone = {(t, k) for t in TOTESYS_TABLES for k in shipped[t] - source_keys(totesys, t)}
    expected = len(gone)
    assert {"sales_order", "transaction", "payment"} <= {t for t, _ in gone}
    totesys.close()
    s3, ingestion = isolated.s3(), isolated.settings.ingestion_bucket
    committed = lake.latest_seq(s3, ingestion)

    if step == "dbt":
        kill_mid_dbt(isolated, tmp_path / "home", tmp_path / "run.log")
    else:
        killed = killed_cycle(isolated, tmp_path / "home", step)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]

    warehouse = isolated.warehouse()
    try:
        [[in_raw]] = warehouse.run("select count(*) from raw._deletions")
        [[in_marts]] = warehouse.run("select count(*) from marts.deletions")
    finally:
        warehouse.close()
    if step == "extract":  # its files are written, its manifest is not: nothing committed
        assert lake.latest_seq(s3, ingestion) == committed
    if step in ("extract", "load"):
        assert in_raw == 0
    if step in ("dbt", "publish-deletions"):
        assert in_raw == expected  # loaded, and only once
    if step == "publish-deletions":
        assert in_marts == expected
        assert lake_rows(isolated, "deletions"), "killed after the deletions file's upload"

    later = cycle_ok(isolated.settings, runs)

    warehouse = isolated.warehouse()
    try:
        runs_by_id = {r.run_id: r.status for r in ops.recent_runs(warehouse)}
        [[cascade_order_now]] = warehouse.run(
            "select sales_order_id from marts.dim_transaction where transaction_id = :t",
            t=cascaded_transaction,
        )
        assert set(deletions(warehouse)) == gone
    finally:
        warehouse.close()
    assert runs_by_id.pop(later.run_id) == "succeeded"
    assert "abandoned" in runs_by_id.values()  # the killed cycle, found by the next one
    assert cascade_order_now is None
    assert_the_marts_equal_the_source(isolated)
    assert_the_lake_holds_each_deletion_once(isolated)


LEGACY_SHAPE = """
drop index if exists intermediate.{key_index};
alter table intermediate.{table} drop column _row_hash;
create unique index {table}_legacy on intermediate.{table} ({key}, last_updated)
"""


def test_versions_built_before_the_row_hash_converge_without_a_full_refresh(cycled, tmp_path):
    """The intermediate tables as the project built them before versions carried `_row_hash`
    (no such column, a unique index on (key, last_updated)): the first build of the new
    project converts them once, in place, keeping every version id; a change that did not move
    `last_updated` then lands as a version of its own, and a version shipped again unchanged
    still adds nothing."""
    isolated, runs = cycled, tmp_path / "runs"
    warehouse = isolated.warehouse()
    tables = [f"int_{t}__versions" for t in TOTESYS_TABLES]
    for table, source in zip(tables, TOTESYS_TABLES, strict=True):
        [[key_index]] = warehouse.run(
            "select indexname from pg_indexes where schemaname = 'intermediate'"
            " and tablename = :t and indexdef like '%_row_hash%'",
            t=table,
        )
        for statement in LEGACY_SHAPE.format(
            table=table, key_index=quote_ident(key_index), key=PRIMARY_KEYS[source]
        ).split(";"):
            warehouse.run(statement)
    # a build by the old project: the next one is a build of a changed project, as after an
    # upgrade (everything, every row)
    warehouse.run("update ops.dbt_invocations set project = 'the project before the row hash'")
    ids_before = {
        t: warehouse.run(f"select count(*), max(version_id) from intermediate.{t}")[0]
        for t in tables
    }
    totesys = isolated.totesys()
    cascaded_order, cascaded_transaction, _ = order_chain(totesys, "sales")
    totesys.run("delete from sales_order where sales_order_id = :o", o=cascaded_order)
    [[fixed_order]] = totesys.run(  # a fix by hand that leaves last_updated alone
        "update sales_order set units_sold = units_sold + 1 where sales_order_id ="
        " (select min(sales_order_id) from sales_order) returning sales_order_id"
    )
    settled(totesys)
    totesys.close()

    cycle_ok(isolated.settings, runs)

    for table, (count, top) in ids_before.items():
        assert warehouse.run(
            f"select count(*) from intermediate.{table} where version_id <= :top",
            top=top,
        ) == [[count]], f"{table}: a version id changed"
        assert warehouse.run(
            f"select count(*) from intermediate.{table} where _row_hash is null"
        ) == [[0]], table
        indexes = [
            d
            for [d] in warehouse.run(
                "select indexdef from pg_indexes where schemaname = 'intermediate'"
                " and tablename = :t and indexdef like 'CREATE UNIQUE%'",
                t=table,
            )
        ]
        assert not [d for d in indexes if d.endswith("last_updated)")], f"{table}: old index"
        assert [d for d in indexes if d.endswith("last_updated, _row_hash)")], table
    for table, source in zip(tables, TOTESYS_TABLES, strict=True):
        key = quote_ident(PRIMARY_KEYS[source])
        # each filled-in hash is the one its staging row gets (so a copy shipped again matches)
        assert warehouse.run(
            f"select count(*) from intermediate.{table} as v"
            f" join staging.stg_totesys__{source} as s on s.{key} = v.{key}"
            " and s.last_updated = v.last_updated and s._manifest_seq = v._manifest_seq"
            " and s._source_file = v._source_file"
            " where v._row_hash <> md5((to_jsonb(s) - array['_manifest_seq', '_run_id',"
            " '_source_file', '_loaded_at', '_quarantine_reason'])::text)"
        ) == [[0]], table
    assert warehouse.run(
        "select count(*), count(distinct last_updated) from intermediate.int_transaction__versions"
        " where transaction_id = :t",
        t=cascaded_transaction,
    ) == [[2, 1]], "the cascade is a version of its own"
    assert warehouse.run(
        "select count(*), count(distinct last_updated_date + last_updated_time)"
        " from marts.fact_sales_order where sales_order_id = :o",
        o=fixed_order,
    ) == [[2, 1]], "the fix by hand is a version of its own"
    warehouse.close()
    cycle_ok(isolated.settings, runs)  # converged: a further cycle changes nothing
    assert_the_marts_equal_the_source(isolated)
    warehouse = isolated.warehouse()
    try:
        for source, (fact, natural) in FACTS.items():
            [[versions]] = warehouse.run(f"select count(*) from marts.{fact}")
            [[distinct]] = warehouse.run(
                f"select count(*) from (select distinct {quote_ident(natural)},"
                " last_updated from raw." + quote_ident(source) + ") as v"
            )
            # one row per version: the fix by hand is the only (key, last_updated) twice
            assert versions == distinct + (1 if source == "sales_order" else 0), fact
    finally:
        warehouse.close()
