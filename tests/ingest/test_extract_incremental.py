"""Later runs extract exactly the rows changed since the committed watermark."""

from __future__ import annotations

import pytest
from support.extract_lake import (
    OPTIONS,
    data_keys,
    entry,
    lake,
    manifests,
    settle,
    source_versions,
    versions,
)

from infra.local.totesys.seed import seed
from infra.local.totesys.simulate import simulate
from ingest.extract import run_extract


@pytest.fixture
def totesys(isolated):
    conn = isolated.totesys()
    seed(conn, scale=0.02, seed=3)
    settle(conn)
    yield conn
    conn.close()


def test_a_run_with_no_changes_writes_only_a_manifest(isolated, totesys):
    run_extract(isolated.settings, options=OPTIONS)
    files_before = data_keys(*lake(isolated))
    second = run_extract(isolated.settings, options=OPTIONS)
    assert second.committed and second.seq == 2
    assert data_keys(*lake(isolated)) == files_before
    latest = manifests(*lake(isolated))[-1]
    assert all(t["rows"] == 0 and t["files"] == [] for t in latest["tables"])


def test_the_next_run_starts_where_the_last_committed_one_ended(isolated, totesys):
    first = run_extract(isolated.settings, options=OPTIONS)
    run_extract(isolated.settings, options=OPTIONS)
    _, second = manifests(*lake(isolated))
    high = {t.table: t.high for t in first.tables}
    assert all(t["watermark"]["low"] == high[t["table"]] for t in second["tables"])


def test_after_a_burst_only_the_changed_rows_are_extracted(isolated, totesys):
    run_extract(isolated.settings, options=OPTIONS)
    before = source_versions(totesys, "sales_order", "sales_order_id")
    simulate(totesys, orders=7, updates=3, seed=11)
    settle(totesys)
    run_extract(isolated.settings, options=OPTIONS)
    changed = source_versions(totesys, "sales_order", "sales_order_id") - before
    s3, bucket = lake(isolated)
    latest = manifests(s3, bucket)[-1]
    assert changed
    assert entry(latest, "sales_order")["rows"] == len(changed)
    extracted = versions(s3, bucket, "sales_order", "sales_order_id")
    assert set(extracted[-len(changed) :]) == changed


def test_every_version_reaches_the_lake_exactly_once_over_many_runs(isolated, totesys):
    for burst in range(3):
        run_extract(isolated.settings, options=OPTIONS)
        simulate(totesys, orders=5, updates=4, payments_paid=3, seed=burst)
        settle(totesys)
    run_extract(isolated.settings, options=OPTIONS)
    s3, bucket = lake(isolated)
    extracted = versions(s3, bucket, "payment", "payment_id")
    assert len(extracted) == len(set(extracted))
    # Each current version is in the lake (superseded ones are too, from earlier runs).
    assert source_versions(totesys, "payment", "payment_id") <= set(extracted)


def test_a_row_committed_late_with_an_older_stamp_is_still_extracted(isolated, totesys):
    run_extract(isolated.settings, options=OPTIONS)
    writer = isolated.totesys()
    writer.run("start transaction")
    # Stamped with the writer's transaction start, before the run below begins...
    writer.run(
        "insert into currency (currency_code, created_at, last_updated)"
        " values ('CHF', now(), now())"
    )
    simulate(totesys, orders=2, updates=0, seed=5)  # ...while later-stamped rows commit first.
    settle(totesys)
    during = run_extract(isolated.settings, options=OPTIONS)
    writer.run("commit")
    writer.close()
    settle(totesys)
    run_extract(isolated.settings, options=OPTIONS)
    s3, bucket = lake(isolated)
    codes = [r["currency_code"] for m in manifests(s3, bucket)[1:] for r in _rows(s3, bucket, m)]
    assert during.committed
    assert codes.count("CHF") == 1


def test_rows_committed_while_an_older_transaction_is_open_ship_in_that_run_and_only_once(
    isolated, totesys
):
    run_extract(isolated.settings, options=OPTIONS)
    before = source_versions(totesys, "sales_order", "sales_order_id")
    writer = isolated.totesys()
    writer.run("start transaction")  # holds the horizon back to its start...
    writer.run("select 1")
    simulate(totesys, orders=3, updates=2, seed=8)  # ...while these commit after it started
    settle(totesys)
    committed = source_versions(totesys, "sales_order", "sales_order_id") - before

    during = run_extract(isolated.settings, options=OPTIONS)
    writer.run("commit")
    writer.close()
    settle(totesys)
    run_extract(isolated.settings, options=OPTIONS)

    s3, bucket = lake(isolated)
    shipped_during = entry(manifests(s3, bucket)[1], "sales_order")
    assert committed and during.committed
    assert shipped_during["rows"] == len(committed), "committed rows ship in the next run"
    assert shipped_during["carry"]["rows"] >= len(committed), "and are remembered as shipped"
    extracted = versions(s3, bucket, "sales_order", "sales_order_id")
    assert len(extracted) == len(set(extracted)), "the run after does not ship them again"


def test_a_table_added_to_the_source_is_picked_up_from_its_first_row(isolated, totesys):
    run_extract(isolated.settings, options=OPTIONS)
    totesys.run(
        "create table voucher (voucher_id serial primary key, code text not null,"
        " created_at timestamp(3) not null default current_timestamp,"
        " last_updated timestamp(3) not null)"
    )
    totesys.run("insert into voucher (code, last_updated) values ('A', '2020-01-01'), ('B', now())")
    settle(totesys)
    run_extract(isolated.settings, options=OPTIONS)
    latest = manifests(*lake(isolated))[-1]
    voucher = entry(latest, "voucher")
    assert (voucher["watermark"]["low"], voucher["rows"]) == (None, 2)


def _rows(s3, bucket, manifest):
    from support.extract_lake import table_rows

    rows = table_rows(s3, bucket, manifest, "currency")
    return rows.to_pylist() if rows is not None else []
