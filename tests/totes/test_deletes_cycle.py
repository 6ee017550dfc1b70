"""Deletions and silent changes through whole cycles on the real stack: the loader copies each
deletion into raw._deletions exactly once, dbt keeps a change that did not move last_updated
as a version of its own, and the deletion guard stops the cycle with an alert."""

from __future__ import annotations

import json
from datetime import date

import pytest
from support.extract_lake import settle

from infra.local.totesys import seed
from infra.local.totesys.simulate import simulate
from lambda_loader.load import run_load
from totes import cycle

pytestmark = pytest.mark.slow
STEPS = [s for s in cycle.default_steps() if s.name != "publish"]


def run(isolated, runs, **kw):
    result = cycle.run_cycle(isolated.settings, steps=STEPS, work_dir=runs, dbt_docs=False, **kw)
    return result


def test_deletions_and_a_cascade_reach_raw_and_the_marts_once(isolated, tmp_path):
    totesys = isolated.totesys()
    seed(totesys, scale=0.02, end=date(2024, 11, 1))
    settle(totesys)
    runs = tmp_path / "runs"
    assert run(isolated, runs).ok
    quiet = dict.fromkeys(
        ("orders", "purchases", "updates", "payments_paid", "address_moves",
         "department_renames", "new_designs"), 0,
    )  # fmt: skip
    result = simulate(totesys, seed=3, deletes=7, **quiet)
    deleted = {t: sorted(result.ids(t, "delete")) for t in ("payment", "transaction",
               "sales_order", "purchase_order")}  # fmt: skip
    assert sum(len(v) for v in deleted.values()) == 7
    # and a cascade: an order deleted while its transaction stays (ON DELETE SET NULL)
    [[cascaded, payment_id]] = totesys.run(
        'select t.transaction_id, p.payment_id from "transaction" t join payment p'
        " on p.transaction_id = t.transaction_id where t.sales_order_id is not null"
        " order by 1 desc limit 1"
    )
    totesys.run("delete from payment where payment_id = :p", p=payment_id)
    [[order_id]] = totesys.run(
        'select sales_order_id from "transaction" where transaction_id = :t', t=cascaded
    )
    totesys.run("delete from sales_order where sales_order_id = :o", o=order_id)
    deleted["payment"] = sorted([*deleted["payment"], payment_id])
    deleted["sales_order"] = sorted([*deleted["sales_order"], order_id])
    settle(totesys)
    second = run(isolated, runs)
    assert second.ok, second.error
    warehouse = isolated.warehouse()
    in_raw = warehouse.run("select table_name, key from raw._deletions order by 1, 2")
    assert sorted(in_raw) == sorted([t, k] for t, keys in deleted.items() for k in keys)
    assert second.step("load").detail["rows_by_table"] is not None
    # dim_transaction holds the cascaded transaction as it is now: no order
    [[so_id]] = warehouse.run(
        "select sales_order_id from marts.dim_transaction where transaction_id = :t", t=cascaded
    )
    assert so_id is None
    [[versions, distinct_updated]] = warehouse.run(
        "select count(*), count(distinct last_updated)"
        " from intermediate.int_transaction__versions where transaction_id = :t",
        t=cascaded,
    )
    assert (versions, distinct_updated) == (2, 1)
    # a re-run of the load and further cycles add nothing
    assert run_load(isolated.settings).loaded == []
    assert run(isolated, runs).ok
    assert warehouse.run("select count(*) from raw._deletions")[0][0] == len(in_raw)
    assert (
        warehouse.run(
            "select count(*) from intermediate.int_transaction__versions where transaction_id = :t",
            t=cascaded,
        )[0][0]
        == 2
    )
    warehouse.close()
    totesys.close()


def test_the_deletion_guard_stops_the_cycle_with_an_alert(isolated, tmp_path, sns_queue):
    topic, queue_url = sns_queue
    totesys = isolated.totesys()
    seed(totesys, scale=0.02, end=date(2024, 11, 1))
    settle(totesys)
    runs = tmp_path / "runs"
    settings = isolated.settings.with_(alert_topic_arn=topic)
    assert cycle.run_cycle(settings, steps=STEPS, work_dir=runs, dbt_docs=False).ok
    totesys.run("truncate payment")
    settle(totesys)
    failed = cycle.run_cycle(settings, steps=STEPS, work_dir=runs, dbt_docs=False)
    assert failed.failed_step == "extract"
    assert "DeletionsRefused" in (failed.error or "")
    sqs = isolated.settings.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=5)
    bodies = [json.loads(json.loads(m["Body"])["Message"]) for m in messages.get("Messages", [])]
    assert [b["failed_step"] for b in bodies] == ["extract"]
    assert "allow-deletes payment" in bodies[0]["error"]
    warehouse = isolated.warehouse()
    assert warehouse.run("select count(*) from raw._deletions")[0][0] == 0
    warehouse.close()
    totesys.close()
