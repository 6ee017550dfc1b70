"""A source column widened under dbt's staging views: raw follows, the views survive, the marts
keep their contracts and match the source. A change raw cannot take stops once, loudly, with an
alert naming the column and the command that resolves it; after that command the flow resumes.
All on the real local stack, through whole cycles (extract → load → dbt build → publish)."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pytest
from rich.console import Console
from support.cycles import alerts
from support.loader_lake import TablePart, arrow_table, put_extract

from infra.local.totesys import seed, simulate
from lambda_loader.load import run_load
from totes import console, cycle, status

# One worker runs the module: two of its tests start from the same first cycle (template).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="faults-widening")]


# The marts are dbt's; the lake copy (publish) is not what these tests are about.
STEPS = cycle.default_steps(skip_publish=True)


def _cycle(settings, tmp_path) -> cycle.CycleResult:
    return cycle.run_cycle(settings, steps=STEPS, work_dir=tmp_path / "runs", dbt_docs=False)


def _seeded_and_built(isolated, work_dir) -> None:
    """The tests' shared beginning, built once per worker (tests/support/templates.py)."""
    conn = isolated.totesys()
    try:
        seed(conn, scale=0.02, seed=5, end=date(2024, 11, 1))
    finally:
        conn.close()
    first = cycle.run_cycle(isolated.settings, steps=STEPS, work_dir=work_dir, dbt_docs=False)
    assert first.ok, first.describe()


@pytest.fixture
def built(from_template, tmp_path):
    """A seeded totesys after a first cycle (`_seeded_and_built`), copied for this test."""
    return from_template("widening", _seeded_and_built, tmp_path / "runs")


def _type_of(conn, schema: str, table: str, column: str) -> str:
    [[found]] = conn.run(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = :s AND c.relname = :t AND a.attname = :c",
        s=schema,
        t=table,
        c=column,
    )
    return found


def _assert_sales_marts_match_the_source(isolated) -> None:
    totesys, warehouse = isolated.totesys(), isolated.warehouse()
    try:
        source = totesys.run(
            "SELECT sales_order_id, units_sold, unit_price FROM sales_order ORDER BY 1"
        )
        current = warehouse.run(
            "SELECT sales_order_id, units_sold, unit_price"
            " FROM marts.fact_sales_order_current ORDER BY 1"
        )
        assert current == source
        [[versions]] = warehouse.run(
            "SELECT count(*) FROM (SELECT DISTINCT sales_order_id, last_updated"
            " FROM raw.sales_order) v"
        )
        [[facts]] = warehouse.run("SELECT count(*) FROM marts.fact_sales_order")
        assert facts == versions
    finally:
        totesys.close()
        warehouse.close()


def test_a_source_column_widened_under_the_staging_views_reaches_raw_and_the_marts(built, tmp_path):
    isolated = built
    conn = isolated.totesys()
    try:
        conn.run(
            "ALTER TABLE sales_order ALTER COLUMN unit_price TYPE numeric(12,2),"
            " ALTER COLUMN units_sold TYPE bigint, ADD COLUMN discount_code text"
        )
        simulate(conn, orders=5, purchases=1, updates=3, payments_paid=1, seed=21)
        conn.run(
            "UPDATE sales_order SET discount_code = 'SPRING',"
            " last_updated = (now() AT TIME ZONE 'UTC')::timestamp(3) WHERE sales_order_id = 1"
        )
    finally:
        conn.close()

    widened = _cycle(isolated.settings, tmp_path)

    assert widened.ok, widened.describe()
    warehouse = isolated.warehouse()
    try:
        assert _type_of(warehouse, "raw", "sales_order", "unit_price") == "numeric(12,2)"
        assert _type_of(warehouse, "raw", "sales_order", "units_sold") == "bigint"
        # The staging view is back, with the types its casts (and the marts' contracts) name.
        assert _type_of(warehouse, "staging", "stg_totesys__sales_order", "units_sold") == (
            "integer"
        )
        assert _type_of(warehouse, "marts", "fact_sales_order", "unit_price") == "numeric(10,2)"
        assert warehouse.run(
            "SELECT DISTINCT discount_code FROM raw.sales_order WHERE sales_order_id = 1"
            " AND discount_code IS NOT NULL"
        ) == [["SPRING"]]
    finally:
        warehouse.close()
    _assert_sales_marts_match_the_source(isolated)
    # The new source column reached raw, and `totes status` says no model reads it yet.
    report = status.gather(isolated.settings)
    [sales] = [s for s in report.sources if s.table == "sales_order"]
    assert sales.unmodelled == ("discount_code",)
    assert not [s.table for s in report.sources if s.unmodelled and s.table != "sales_order"]
    out = Console(file=io.StringIO(), width=240)
    console.render_status(report, out)
    assert "raw.sales_order, not in its staging model: discount_code" in out.file.getvalue()

    again = _cycle(isolated.settings, tmp_path)
    assert again.ok, again.describe()
    _assert_sales_marts_match_the_source(isolated)


V1 = [
    ("currency_id", "integer", pa.int32(), False),
    ("price", "numeric(10,2)", pa.decimal128(10, 2), False),
]
V2 = [
    ("currency_id", "integer", pa.int32(), False),
    ("price", "numeric(14,4)", pa.decimal128(14, 4), False),
]


def _extract(isolated, seq: int, columns: list, ids: list[int], price: str) -> None:
    rows = {"currency_id": ids, "price": [Decimal(price)] * len(ids)}
    put_extract(
        isolated.s3(),
        isolated.settings.ingestion_bucket,
        seq,
        [TablePart("currency", columns, [arrow_table(columns, rows)])],
    )


def test_views_over_a_widened_raw_column_keep_their_definition_owner_grants_and_comments(
    isolated,
):
    _extract(isolated, 1, V1, [1], "12.50")
    run_load(isolated.settings)
    conn = isolated.warehouse()
    conn.run("CREATE ROLE widening_reader")
    conn.run("CREATE ROLE widening_owner")
    conn.run("CREATE SCHEMA IF NOT EXISTS reports")
    conn.run("CREATE VIEW reports.priced AS SELECT currency_id, price::numeric(12,2) AS price"
             " FROM raw.currency")  # fmt: skip
    conn.run("CREATE VIEW reports.doubled AS SELECT currency_id, price * 2 AS twice"
             " FROM reports.priced")  # fmt: skip
    conn.run("CREATE VIEW reports.plain AS SELECT currency_id, price FROM raw.currency")
    conn.run("ALTER VIEW reports.doubled OWNER TO widening_owner")
    conn.run("GRANT SELECT ON reports.priced TO widening_reader, widening_owner")
    conn.run("COMMENT ON VIEW reports.doubled IS 'twice the price'")
    conn.run("COMMENT ON COLUMN reports.priced.price IS 'agreed price'")
    acl = "SELECT relacl::text FROM pg_class WHERE oid = 'reports.priced'::regclass"
    acl_before = conn.run(acl)
    conn.close()

    _extract(isolated, 2, V2, [2], "123456.1234")
    result = run_load(isolated.settings)

    assert result.loaded == [2]
    conn = isolated.warehouse()
    try:
        assert _type_of(conn, "raw", "currency", "price") == "numeric(14,4)"
        assert _type_of(conn, "reports", "priced", "price") == "numeric(12,2)"
        assert _type_of(conn, "reports", "plain", "price") == "numeric(14,4)"
        assert conn.run("SELECT currency_id, twice FROM reports.doubled ORDER BY 1") == [
            [1, Decimal("25.00")],
            [2, Decimal("246912.24")],
        ]
        assert conn.run("SELECT price FROM reports.plain ORDER BY currency_id") == [
            [Decimal("12.5000")],
            [Decimal("123456.1234")],
        ]
        assert conn.run(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'reports.doubled'::regclass"
        ) == [["widening_owner"]]
        assert conn.run(
            "SELECT has_table_privilege('widening_reader', 'reports.priced', 'SELECT')"
        ) == [[True]]
        assert conn.run(acl) == acl_before
        assert conn.run("SELECT obj_description('reports.doubled'::regclass, 'pg_class')") == [
            ["twice the price"]
        ]
        assert conn.run("SELECT col_description('reports.priced'::regclass, 2)") == [
            ["agreed price"]
        ]
    finally:  # roles belong to the whole server, not to this test's database
        conn.run("DROP SCHEMA reports CASCADE")
        conn.run("DROP OWNED BY widening_reader, widening_owner")
        conn.run("DROP ROLE widening_reader, widening_owner")
        conn.close()


def test_a_change_raw_cannot_take_stops_once_with_an_alert_and_resumes_after_a_skip(
    built, sns_queue, tmp_path
):
    isolated = built
    topic, queue_url = sns_queue
    settings = isolated.settings.with_(alert_topic_arn=topic)
    # The queue is new: the first cycle (the template's) alerted nothing to it.
    conn = isolated.totesys()
    try:
        conn.run(
            "ALTER TABLE sales_order ALTER COLUMN agreed_delivery_date TYPE date"
            " USING agreed_delivery_date::date"
        )
    finally:
        conn.close()

    blocked = _cycle(settings, tmp_path)

    assert blocked.failed_step == "load"
    [alert] = alerts(isolated, queue_url)
    seq = blocked.step("extract").detail["seq"]
    assert "raw.sales_order.agreed_delivery_date" in alert["error"]
    assert f"totes load --skip {seq} --reason" in alert["error"]

    # The source's owners put the column back; the operator skips the manifest that blocks.
    conn = isolated.totesys()
    try:
        conn.run(
            "ALTER TABLE sales_order ALTER COLUMN agreed_delivery_date TYPE text"
            " USING to_char(agreed_delivery_date, 'YYYY-MM-DD')"
        )
    finally:
        conn.close()
    skip = subprocess.run(
        [sys.executable, "-m", "totes.cli", "load", "--skip", str(seq), "--reason", "reverted"],
        env={**isolated.env(), "TOTES_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert skip.returncode == 0, skip.stderr
    conn = isolated.totesys()
    try:
        simulate(conn, orders=3, purchases=1, updates=2, payments_paid=1, seed=4)
    finally:
        conn.close()

    resumed = _cycle(settings, tmp_path)

    assert resumed.ok, resumed.describe()
    assert alerts(isolated, queue_url) == []
    _assert_sales_marts_match_the_source(isolated)
