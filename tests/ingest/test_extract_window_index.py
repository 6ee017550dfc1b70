"""A run reads its window of changed rows through the source's index on last_updated when the
source has one, and by a sequential scan when it has not: the same rows either way."""

from __future__ import annotations

import pytest
from support.extract_lake import OPTIONS, entry, lake, manifests, settle, source_versions

from infra.local.totesys.seed import seed
from infra.local.totesys.simulate import simulate
from ingest.catalog import discover_tables
from ingest.extract import run_extract
from ingest.stream import Slice, _bind_slice, _prefer_index, stream_batches, watermark_index
from ingest.watermark import begin_snapshot


@pytest.fixture
def totesys(isolated):
    conn = isolated.totesys()
    seed(conn, scale=0.05, seed=3)
    settle(conn)
    yield conn
    conn.close()


def _plan(conn, table, rows: Slice) -> str:
    """The plan of the COPY's query for `rows`, as the extract runs it (its snapshot and its
    planner settings)."""
    begin_snapshot(conn)
    try:
        if rows.by_index:
            _prefer_index(conn)
        copy = _bind_slice(conn, table, rows)
        query = copy.removeprefix("copy (").rsplit(") to stdout", 1)[0]
        return "\n".join(line for [line] in conn.run(f"explain {query}"))
    finally:
        conn.run("rollback")


def test_a_window_is_read_through_the_last_updated_index(totesys):
    [sales] = [t for t in discover_tables(totesys) if t.name == "sales_order"]
    assert watermark_index(totesys, sales)

    plan = _plan(totesys, sales, Slice("2024-06-01 00:00:00.000", by_index=True))

    assert "sales_order_last_updated_idx" in plan, plan
    assert "Seq Scan on sales_order" not in plan, plan
    # The setting is the COPY's alone: the transaction's next query plans for itself.
    begin_snapshot(totesys)
    try:
        assert list(stream_batches(totesys, sales, Slice("2024-06-01 00:00:00.000", by_index=True)))
        assert totesys.run("select current_setting('enable_seqscan')") == [["on"]]
    finally:
        totesys.run("rollback")


def test_without_the_index_a_window_is_scanned_and_ships_the_same_rows(isolated, totesys):
    run_extract(isolated.settings, options=OPTIONS)
    totesys.run('drop index "sales_order_last_updated_idx"')
    [sales] = [t for t in discover_tables(totesys) if t.name == "sales_order"]
    assert not watermark_index(totesys, sales)
    assert "Seq Scan on sales_order" in _plan(totesys, sales, Slice("2024-06-01 00:00:00.000"))
    before = source_versions(totesys, "sales_order", "sales_order_id")
    simulate(totesys, orders=4, updates=2, seed=8)
    settle(totesys)

    run_extract(isolated.settings, options=OPTIONS)

    changed = source_versions(totesys, "sales_order", "sales_order_id") - before
    assert changed
    assert entry(manifests(*lake(isolated))[-1], "sales_order")["rows"] == len(changed)
