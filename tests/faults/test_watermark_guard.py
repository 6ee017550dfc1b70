"""The extract never trusts a committed watermark blindly: it starts only from manifests the
loader did not skip, re-covers a skipped manifest's window, and refuses (loudly, with an alert
through the cycle) a watermark ahead of the source clock or one that went backwards."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from support.cycles import alerts
from support.extract_lake import OPTIONS, data_keys, lake, settle

from infra.local.totesys.schema import PRIMARY_KEYS, TOTESYS_TABLES
from infra.local.totesys.seed import seed
from infra.local.totesys.simulate import simulate
from ingest.extract import run_extract
from ingest.watermark import format_ts, parse_ts
from lambda_loader.admin import skip_manifest
from lambda_loader.load import run_load
from runtime import lake as lake_contract
from runtime.db import quote_ident
from totes import cycle

UPDATED = 25


@pytest.fixture
def totesys(isolated):
    conn = isolated.totesys()
    seed(conn, scale=0.02, seed=3)
    settle(conn)
    yield conn
    conn.close()


def test_a_skipped_manifest_with_a_future_watermark_does_not_hide_later_versions(isolated, totesys):
    run_extract(isolated.settings, options=OPTIONS)
    run_load(isolated.settings)
    _commit_crafted(isolated, totesys, 2, "sales_order", ahead=timedelta(hours=1))
    skip_manifest(isolated.settings, 2, "watermark an hour in the future")
    updated = _update_sales_orders(totesys)

    after = run_extract(isolated.settings, options=OPTIONS)
    run_load(isolated.settings)

    assert after.committed
    assert updated <= _raw_versions(isolated, "sales_order"), "every new version reaches raw"
    _assert_raw_is_the_source(isolated, totesys)


def test_a_future_watermark_is_refused_naming_it_and_nothing_is_committed(
    isolated, totesys, sns_queue
):
    run_extract(isolated.settings, options=OPTIONS)
    run_load(isolated.settings)
    high = _commit_crafted(isolated, totesys, 2, "sales_order", ahead=timedelta(hours=1))
    before = _lake_keys(isolated)

    with pytest.raises(Exception, match="ahead of the source") as refused:
        run_extract(isolated.settings, options=OPTIONS)

    message = str(refused.value)
    assert "manifest 2" in message and "sales_order" in message and high in message
    assert "totes load --skip 2" in message, "the message says how to get past it"
    assert _lake_keys(isolated) == before, "nothing is written, nothing committed"
    _assert_the_cycle_alerts(isolated, sns_queue, "ahead of the source")

    # The documented way past it: skip the manifest; the next extract starts from manifest 1.
    skip_manifest(isolated.settings, 2, "watermark an hour in the future")
    updated = _update_sales_orders(totesys)
    assert run_extract(isolated.settings, options=OPTIONS).committed
    run_load(isolated.settings)
    assert updated <= _raw_versions(isolated, "sales_order")
    _assert_raw_is_the_source(isolated, totesys)


def test_a_watermark_that_went_backwards_is_refused(isolated, totesys, sns_queue):
    run_extract(isolated.settings, options=OPTIONS)
    high = _commit_crafted(isolated, totesys, 2, "sales_order", ahead=-timedelta(hours=1))
    before = _lake_keys(isolated)

    with pytest.raises(Exception, match="went backwards") as refused:
        run_extract(isolated.settings, options=OPTIONS)

    message = str(refused.value)
    assert "manifest 2" in message and "sales_order" in message and high in message
    assert _lake_keys(isolated) == before
    _assert_the_cycle_alerts(isolated, sns_queue, "went backwards")


def test_a_skip_after_later_manifests_committed_is_re_covered_once(isolated, totesys):
    first = run_extract(isolated.settings, options=OPTIONS)
    run_load(isolated.settings)
    lost = _update_sales_orders(totesys)
    run_extract(isolated.settings, options=OPTIONS)  # seq 2: will be skipped
    simulate(totesys, orders=3, updates=2, seed=4)
    settle(totesys)
    run_extract(isolated.settings, options=OPTIONS)  # seq 3: committed before the skip
    skip_manifest(isolated.settings, 2, "blocked the queue")
    run_load(isolated.settings)  # loads 3

    recover = run_extract(isolated.settings, options=OPTIONS)
    run_load(isolated.settings)
    after = run_extract(isolated.settings, options=OPTIONS)

    low = {t.table: t.low for t in recover.tables}
    assert low == {t.table: t.high for t in first.tables}, "re-covers from manifest 1"
    assert {t.table: t.low for t in after.tables} == {t.table: t.high for t in recover.tables}
    assert lost <= _raw_versions(isolated, "sales_order"), "the skipped window reached raw"
    assert sum(t.rows for t in after.tables) == 0, "and is re-covered only once"


@pytest.mark.slow
def test_after_a_skip_one_cycle_re_covers_the_window_and_raw_and_marts_match_the_source(
    isolated, totesys, tmp_path
):
    steps = cycle.default_steps(skip_publish=True)
    first = cycle.run_cycle(isolated.settings, steps=steps, work_dir=tmp_path, dbt_docs=False)
    assert first.ok, first.describe()
    simulate(totesys, orders=6, updates=4, payments_paid=3, seed=21)
    updated = _update_sales_orders(totesys)
    settle(totesys)
    skipped = run_extract(isolated.settings, options=OPTIONS)  # holds the new versions...
    assert skipped.committed and skipped.rows > 0
    skip_manifest(isolated.settings, skipped.seq, "operator test: rows must come back")

    again = cycle.run_cycle(isolated.settings, steps=steps, work_dir=tmp_path, dbt_docs=False)

    assert again.ok, again.describe()
    assert updated <= _raw_versions(isolated, "sales_order"), "the skipped window is re-covered"
    _assert_raw_is_the_source(isolated, totesys)
    conn = isolated.warehouse()
    try:
        [[facts]] = conn.run("select count(*) from marts.fact_sales_order")
    finally:
        conn.close()
    assert facts == len(_raw_versions(isolated, "sales_order")), "one fact row per version"


# ---- helpers ------------------------------------------------------------------------------------


def _commit_crafted(isolated, totesys, seq: int, table: str, *, ahead: timedelta) -> str:
    """Commit manifest `seq` continuing manifest seq-1 with no rows, whose `table` high is
    `ahead` of the source clock (negative: that far below its low, gone backwards).
    Returns that high."""
    s3, bucket = lake(isolated)
    previous = lake_contract.read_manifest(s3, bucket, lake_contract.manifest_key(seq - 1))
    [[now]] = totesys.run("select now() at time zone 'UTC'")
    low_of = {t.table: t.watermark_high for t in previous.tables}
    base = now if ahead > timedelta(0) else parse_ts(low_of[table])
    high = format_ts(base + ahead)
    entries = [
        replace(
            t,
            watermark_low=low_of[t.table],
            watermark_high=high if t.table == table else low_of[t.table],
            rows=0,
            files=(),
            carry=None,
        )
        for t in previous.tables
    ]
    crafted = lake_contract.new_manifest(seq, f"crafted-{seq}", entries)
    assert lake_contract.commit_manifest(s3, bucket, crafted)
    return high


def _update_sales_orders(totesys) -> set[tuple[int, object]]:
    """A new version of UPDATED sales orders, stamped by the source clock now."""
    rows = totesys.run(
        "update sales_order set units_sold = units_sold + 1, last_updated = now()"
        " where sales_order_id in"
        " (select sales_order_id from sales_order order by sales_order_id limit :n)"
        " returning sales_order_id, last_updated",
        n=UPDATED,
    )
    settle(totesys)
    assert len(rows) == UPDATED
    return {(key, stamp) for key, stamp in rows}


def _raw_versions(isolated, table: str) -> set[tuple[int, object]]:
    conn = isolated.warehouse()
    try:
        key = quote_ident(PRIMARY_KEYS[table])
        return {(k, lu) for k, lu in conn.run(f"select {key}, last_updated from raw.{table}")}
    finally:
        conn.close()


def _assert_raw_is_the_source(isolated, totesys) -> None:
    """Each source row's current version is raw's newest version of that key, and raw holds
    no version twice."""
    conn = isolated.warehouse()
    try:
        for table in TOTESYS_TABLES:
            key, name = quote_ident(PRIMARY_KEYS[table]), quote_ident(table)
            source = {
                tuple(r) for r in totesys.run(f"select {key}, last_updated from public.{name}")
            }
            newest = {
                tuple(r)
                for r in conn.run(
                    f"select distinct on ({key}) {key}, last_updated from raw.{name}"
                    f" order by {key}, last_updated desc"
                )
            }
            [[twice]] = conn.run(
                f"select count(*) - count(distinct ({key}, last_updated)) from raw.{name}"
            )
            assert (table, newest) == (table, source)
            assert (table, twice) == (table, 0), "no version is in raw twice"
    finally:
        conn.close()


def _lake_keys(isolated) -> list[str]:
    s3, bucket = lake(isolated)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


def _assert_the_cycle_alerts(isolated, sns_queue, words: str) -> None:
    """The cycle's failure path alerts on the refused extract (the state machine's catch does
    the same in AWS)."""
    topic, queue_url = sns_queue
    settings = isolated.settings.with_(alert_topic_arn=topic)
    extract_only = [s for s in cycle.default_steps() if s.name == "extract"]
    before = data_keys(*lake(isolated))
    failed = cycle.run_cycle(settings, steps=extract_only, dbt_docs=False)
    assert failed.failed_step == "extract" and words in (failed.error or "")
    [alert] = alerts(isolated, queue_url)
    assert words in json.dumps(alert)
    assert data_keys(*lake(isolated)) == before
