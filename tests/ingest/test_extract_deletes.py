"""Reconciliation in the extract: deleted keys and changes that bypass last_updated are found
with read-only access and committed in the same manifest as the changed rows, exactly once."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from dataclasses import replace

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from support.extract_lake import OPTIONS, entry, lake, manifests, settle, table_rows

from infra.local.totesys.schema import TOTESYS_TABLES
from infra.local.totesys.seed import seed
from ingest.extract import run_extract
from ingest.reconcile import DeletionsRefused, ReconcileOptions
from runtime import lake as lake_contract

CRASH_AFTER_FILES = """
import os
from ingest.extract import ExtractOptions, run_extract
from runtime.config import Settings
run_extract(Settings.from_env(), options=ExtractOptions(margin_s=0.0),
            after_files=lambda: os._exit(17))
"""


@pytest.fixture
def totesys(isolated):
    conn = isolated.totesys()
    seed(conn, scale=0.02, seed=5)
    settle(conn)
    yield conn
    conn.close()


def extract(isolated, **reconcile):
    options = (
        OPTIONS if not reconcile else replace(OPTIONS, reconcile=ReconcileOptions(**reconcile))
    )
    return run_extract(isolated.settings, options=options)


def deleted_keys(s3, bucket, table: str) -> list[int]:
    """Every key any committed manifest records as deleted from `table`, in order."""
    found = []
    for manifest in manifests(s3, bucket):
        found += _deleted_in(s3, bucket, manifest, table)
    return found


def _deleted_in(s3, bucket, manifest, table) -> list[int]:
    recon = entry(manifest, table).get("reconcile") or {}
    ref = recon.get("deletions")
    if not ref:
        return []
    body = s3.get_object(Bucket=bucket, Key=ref["key"])["Body"].read()
    return pq.read_table(io.BytesIO(body)).column("key").to_pylist()


def delete_order_chain(conn, order_id: int) -> tuple[int, int]:
    """Delete a sales order the way the foreign keys allow: its payment, its transaction,
    then the order. Returns (payment_id, transaction_id)."""
    [[transaction_id, payment_id]] = conn.run(
        'select t.transaction_id, p.payment_id from "transaction" t'
        " join payment p on p.transaction_id = t.transaction_id where t.sales_order_id = :o",
        o=order_id,
    )
    conn.run("delete from payment where payment_id = :p", p=payment_id)
    conn.run('delete from "transaction" where transaction_id = :t', t=transaction_id)
    conn.run("delete from sales_order where sales_order_id = :o", o=order_id)
    return payment_id, transaction_id


def test_deletions_ship_in_the_manifest_once(isolated, totesys):
    extract(isolated)
    payment_id, transaction_id = delete_order_chain(totesys, 7)
    settle(totesys)
    result = extract(isolated)
    s3, bucket = lake(isolated)
    assert result.deleted == 3
    assert deleted_keys(s3, bucket, "sales_order") == [7]
    assert deleted_keys(s3, bucket, "transaction") == [transaction_id]
    assert deleted_keys(s3, bucket, "payment") == [payment_id]
    # Idle runs afterwards record nothing more and write no new state.
    before = _state_keys(s3, bucket)
    extract(isolated)
    extract(isolated)
    assert deleted_keys(s3, bucket, "sales_order") == [7]
    assert _state_keys(s3, bucket) == before
    latest = manifests(s3, bucket)[-1]
    assert (
        entry(latest, "sales_order")["reconcile"]["source_rows"]
        == totesys.run("select count(*) from sales_order")[0][0]
    )


def _state_keys(s3, bucket):
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=lake_contract.STATE_PREFIX
    )
    return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


def test_every_table_the_foreign_keys_let_go(isolated, totesys):
    """One row of each of the 11 tables, deleted in an order the foreign keys allow."""
    extract(isolated)
    unused = {
        # rows nothing refers to once the chain above them is gone
        "currency": "insert into currency (currency_code, last_updated) values ('JPY', now())"
        " returning currency_id",
        "payment_type": "insert into payment_type (payment_type_name, last_updated)"
        " values ('SALES_REFUND', now()) returning payment_type_id",
        "department": "insert into department (department_name, last_updated)"
        " values ('Gone', now()) returning department_id",
        "staff": None,
        "address": "insert into address (address_line_1, city, postal_code, country, phone,"
        " last_updated) values ('1 Gone St', 'X', 'X', 'X', 'X', now()) returning address_id",
        "counterparty": None,
        "design": "insert into design (design_name, file_location, file_name, last_updated)"
        " values ('gone', '/tmp', 'gone.json', now()) returning design_id",
    }
    fresh = {t: totesys.run(sql)[0][0] for t, sql in unused.items() if sql}
    extract(isolated)
    fresh["staff"] = totesys.run(
        "insert into staff (first_name, last_name, department_id, email_address, last_updated)"
        " values ('A', 'B', :d, 'a.b@x', now()) returning staff_id",
        d=fresh["department"],
    )[0][0]
    fresh["counterparty"] = totesys.run(
        "insert into counterparty (counterparty_legal_name, legal_address_id, last_updated)"
        " values ('Gone Ltd', :a, now()) returning counterparty_id",
        a=fresh["address"],
    )[0][0]
    extract(isolated)
    payment_id, transaction_id = delete_order_chain(totesys, 11)
    [[po_transaction, po_payment, po_id]] = totesys.run(
        'select t.transaction_id, p.payment_id, t.purchase_order_id from "transaction" t'
        " join payment p on p.transaction_id = t.transaction_id"
        " where t.purchase_order_id is not null order by 1 limit 1"
    )
    totesys.run("delete from payment where payment_id = :p", p=po_payment)
    totesys.run('delete from "transaction" where transaction_id = :t', t=po_transaction)
    totesys.run("delete from purchase_order where purchase_order_id = :p", p=po_id)
    for table in ("staff", "counterparty", "department", "address", "design", "currency",
                  "payment_type"):  # fmt: skip
        key = f"{table}_id"
        totesys.run(f'delete from "{table}" where "{key}" = :k', k=fresh[table])
    settle(totesys)
    extract(isolated)
    s3, bucket = lake(isolated)
    expected = {
        **fresh,
        "sales_order": 11,
        "purchase_order": po_id,
        "transaction": sorted([transaction_id, po_transaction]),
        "payment": sorted([payment_id, po_payment]),
    }
    assert set(expected) == set(TOTESYS_TABLES)
    for table, keys in expected.items():
        assert deleted_keys(s3, bucket, table) == (keys if isinstance(keys, list) else [keys])


def test_a_cascade_set_null_ships_a_new_version(isolated, totesys):
    """Deleting an order whose transaction stays sets transaction.sales_order_id to NULL
    without touching its last_updated: the transaction ships again, as it is now."""
    extract(isolated)
    [[transaction_id, payment_id, updated]] = totesys.run(
        'select t.transaction_id, p.payment_id, t.last_updated from "transaction" t'
        " join payment p on p.transaction_id = t.transaction_id where t.sales_order_id = 5"
    )
    totesys.run("delete from payment where payment_id = :p", p=payment_id)
    totesys.run("delete from sales_order where sales_order_id = 5")
    settle(totesys)
    result = extract(isolated)
    s3, bucket = lake(isolated)
    latest = manifests(s3, bucket)[-1]
    rows = table_rows(s3, bucket, latest, "transaction")
    assert rows is not None
    shipped = rows.filter(pc.equal(rows.column("transaction_id"), transaction_id))
    assert shipped.column("sales_order_id").to_pylist() == [None]
    assert shipped.column("last_updated").to_pylist() == [updated]
    assert entry(latest, "transaction")["reconcile"]["silent"] == 1
    assert deleted_keys(s3, bucket, "sales_order") == [5]
    assert next(t for t in result.tables if t.table == "transaction").silent == 1


def test_a_manual_fix_without_a_timestamp_ships(isolated, totesys):
    extract(isolated)
    totesys.run("update sales_order set units_sold = units_sold + 1 where sales_order_id = 9")
    totesys.run("update address set city = 'Fixed' where address_id = 3")
    settle(totesys)
    extract(isolated)
    s3, bucket = lake(isolated)
    latest = manifests(s3, bucket)[-1]
    orders = table_rows(s3, bucket, latest, "sales_order")
    assert orders is not None and orders.column("sales_order_id").to_pylist() == [9]
    addresses = table_rows(s3, bucket, latest, "address")
    assert addresses is not None and addresses.column("city").to_pylist() == ["Fixed"]
    # and only once
    extract(isolated)
    assert [t["rows"] for t in manifests(s3, bucket)[-1]["tables"]] == [0] * len(TOTESYS_TABLES)


def test_delete_then_reinsert_the_same_key(isolated, totesys):
    extract(isolated)
    [row] = totesys.run("select * from design where design_id = 2")
    totesys.run("delete from design where design_id = 2")
    settle(totesys)
    extract(isolated)
    totesys.run(
        "insert into design (design_id, created_at, design_name, file_location, file_name,"
        " last_updated) values (2, now(), :n, :l, :f, now())",
        n=row[2], l=row[3], f=row[4],
    )  # fmt: skip
    settle(totesys)
    extract(isolated)
    s3, bucket = lake(isolated)
    assert deleted_keys(s3, bucket, "design") == [2]
    latest = manifests(s3, bucket)[-1]
    rows = table_rows(s3, bucket, latest, "design")
    assert rows is not None and rows.column("design_id").to_pylist() == [2]
    # deleted again later: a second, distinct deletion
    totesys.run("delete from design where design_id = 2")
    settle(totesys)
    extract(isolated)
    assert deleted_keys(s3, bucket, "design") == [2, 2]


def test_a_deletion_during_a_run_is_recorded_by_the_next(isolated, totesys):
    extract(isolated)
    writer = isolated.totesys()
    done = threading.Event()

    def delete_mid_run():
        delete_order_chain(writer, 13)
        done.set()

    from ingest import extract as extract_module

    original = extract_module.Reconciler.finish

    def finish_then_delete(self, table, shipped):
        if not done.is_set():
            delete_mid_run()  # committed after the run's snapshot
        return original(self, table, shipped)

    extract_module.Reconciler.finish = finish_then_delete
    try:
        extract(isolated)
    finally:
        extract_module.Reconciler.finish = original
        writer.close()
    s3, bucket = lake(isolated)
    assert deleted_keys(s3, bucket, "sales_order") == []
    settle(totesys)
    extract(isolated)
    assert deleted_keys(s3, bucket, "sales_order") == [13]


def test_the_guard_refuses_a_mass_delete_and_an_override_lets_it_through_once(isolated, totesys):
    extract(isolated)
    s3, bucket = lake(isolated)
    [[before]] = totesys.run("select count(*) from payment")
    totesys.run("delete from payment where payment_id % 3 <> 0")
    [[after]] = totesys.run("select count(*) from payment")
    settle(totesys)
    committed = len(manifests(s3, bucket))
    with pytest.raises(DeletionsRefused, match=r"payment.*allow-deletes payment"):
        extract(isolated)
    assert len(manifests(s3, bucket)) == committed
    assert _deletions_objects(s3, bucket) == []
    # the operator looked: allowed once, for the run starting from this base
    assert lake_contract.mark_allow_deletes(
        s3, bucket, committed, "payment", reason="archived old payments", run_id="test"
    )
    extract(isolated)
    gone = deleted_keys(s3, bucket, "payment")
    assert len(gone) == before - after and all(k % 3 for k in gone)
    latest = manifests(s3, bucket)[-1]
    assert entry(latest, "payment")["reconcile"]["allowed_by"] == lake_contract.allow_deletes_key(
        committed, "payment"
    )
    # the marker is spent: the next mass delete is refused again
    totesys.run("delete from payment where payment_id in (select payment_id from payment"
                " order by 1 limit (select count(*) / 2 + 1 from payment))")  # fmt: skip
    settle(totesys)
    with pytest.raises(DeletionsRefused):
        extract(isolated)


def test_the_guard_refuses_an_empty_table(isolated, totesys):
    extract(isolated)
    totesys.run("truncate payment")
    settle(totesys)
    with pytest.raises(DeletionsRefused, match="payment is empty"):
        extract(isolated, delete_share=1.0)
    s3, bucket = lake(isolated)
    assert len(manifests(s3, bucket)) == 1


def _deletions_objects(s3, bucket):
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=lake_contract.DELETIONS_PREFIX
    )
    return [o["Key"] for page in pages for o in page.get("Contents", ())]


def test_a_killed_run_records_nothing_and_the_next_records_once(isolated, totesys):
    extract(isolated)
    delete_order_chain(totesys, 17)
    settle(totesys)
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_FILES], env=isolated.env(), capture_output=True
    )
    assert crashed.returncode == 17
    s3, bucket = lake(isolated)
    assert len(manifests(s3, bucket)) == 1
    assert _deletions_objects(s3, bucket)  # orphans of the killed run: never read
    extract(isolated)
    assert deleted_keys(s3, bucket, "sales_order") == [17]
    extract(isolated)
    assert deleted_keys(s3, bucket, "sales_order") == [17]


def test_concurrent_runs_record_a_deletion_once(isolated, totesys):
    extract(isolated)
    delete_order_chain(totesys, 19)
    settle(totesys)
    results = []
    runs = [threading.Thread(target=lambda: results.append(extract(isolated))) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    extract(isolated)
    s3, bucket = lake(isolated)
    assert deleted_keys(s3, bucket, "sales_order") == [19]
    assert sum(r.committed for r in results) >= 1


def _wait_for_deletes_counted(conn, table: str, at_least: int) -> None:
    """Statistics reach pg_stat_user_tables after the deleting backend flushes them."""
    import time

    while conn.run(
        "select coalesce(n_tup_del, 0) < :n from pg_stat_user_tables where relname = :t",
        n=at_least,
        t=table,
    )[0][0]:
        time.sleep(0.1)


def test_a_big_table_is_key_checked_when_its_deletes_counter_moves(isolated, totesys):
    """With a content window far smaller than the tables (as at --scale 100), a deletion
    outside this run's window is still found: the deletes counter moved, so every range's
    keys are compared; an idle run after it compares only the window."""
    extract(isolated, content_rows_per_cycle=1)
    [[counted]] = totesys.run(
        "select coalesce(n_tup_del, 0) from pg_stat_user_tables where relname = 'payment'"
    )
    [[first]] = totesys.run("select min(payment_id) from payment")
    totesys.run("delete from payment where payment_id = :p", p=first)
    settle(totesys)
    _wait_for_deletes_counted(totesys, "payment", counted + 1)
    result = extract(isolated, content_rows_per_cycle=1)
    s3, bucket = lake(isolated)
    assert deleted_keys(s3, bucket, "payment") == [first]
    assert result.deleted == 1
    latest = manifests(s3, bucket)[-1]
    # one row per window: this run's window held no payment range, the counter found it
    assert entry(latest, "payment")["reconcile"]["content_checked"] is None
    extract(isolated, content_rows_per_cycle=1)
    assert deleted_keys(s3, bucket, "payment") == [first]
