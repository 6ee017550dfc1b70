"""The dbt project (dbt_warehouse/) against real data: totesys → raw → `dbt build` → marts.

The raw layer comes from the real extractor and loader when they are importable, else from
tests/support/raw_from_source.py (same tables, per docs/CONTRACTS.md). The marts are checked
against totesys by plain SQL written here, independently of the dbt models.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import raw_from_source, totesys_data

from publish import marts

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "dbt_warehouse"
DBT = Path(sys.executable).parent / "dbt"
FACTS = {
    # fact: (source table, source key, record id, expected foreign keys)
    "fact_sales_order": ("sales_order", "sales_order_id", "sales_record_id", 9),
    "fact_purchase_order": ("purchase_order", "purchase_order_id", "purchase_record_id", 8),
    "fact_payment": ("payment", "payment_id", "payment_record_id", 7),
}


def test_the_expectations_cover_every_fact_the_pipeline_publishes():
    assert {fact: record_id for fact, (_, _, record_id, _) in FACTS.items()} == dict(marts.FACTS)


# ----------------------------------------------------------------------------- the pipeline


class Warehouse:
    """One isolated totesys + warehouse pair and a private dbt target/log path."""

    def __init__(self, isolated, tmp_path: Path) -> None:
        self.isolated = isolated
        self.tmp = tmp_path
        self.totesys = isolated.totesys()
        self.warehouse = isolated.warehouse()

    def seed(self) -> None:
        try:
            from infra.local.totesys.seed import seed
        except ImportError:
            totesys_data.fill(self.totesys)
        else:
            seed(self.totesys, scale=0.02, seed=7)

    def burst(self) -> None:
        """New orders plus updates: changed units, a payment paid, a moved address, a renamed
        department (the real simulator when importable)."""
        try:
            from infra.local.totesys.simulate import simulate
        except ImportError:
            totesys_data.burst(self.totesys)
        else:
            simulate(
                self.totesys,
                orders=6,
                purchases=3,
                updates=4,
                payments_paid=4,
                address_moves=2,
                department_renames=1,
                new_designs=1,
                seed=11,
            )

    def load_raw(self) -> None:
        try:
            from ingest.extract import run_extract
            from lambda_loader.load import run_load
        except ImportError:
            raw_from_source.load_raw(self.totesys, self.warehouse)
        else:
            time.sleep(1.5)  # the extractor leaves the last second to writers still committing
            run_extract(self.isolated.settings)
            run_load(self.isolated.settings)

    def dbt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            str(DBT),
            *args,
            "--project-dir",
            str(PROJECT),
            "--profiles-dir",
            str(PROJECT),
            "--target-path",
            str(self.tmp / "target"),
            "--log-path",
            str(self.tmp / "logs"),
        ]
        # dbt as a data engineer runs it (no vars), so with a saved parse of its own in the
        # test's target, never the worker's (tests/conftest.py), made for the cycle's vars
        env = self.isolated.env()
        env.pop("DBT_PARTIAL_PARSE_FILE_PATH", None)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if check and done.returncode != 0:
            pytest.fail(f"dbt {' '.join(args)} failed:\n{done.stdout[-6000:]}{done.stderr}")
        return done

    def build(self) -> str:
        return self.dbt("build").stdout

    def marts(self, sql: str, **params) -> list[list]:
        return self.warehouse.run(sql, **params)

    def source(self, sql: str, **params) -> list[list]:
        return self.totesys.run(sql, **params)

    def close(self) -> None:
        self.totesys.close()
        self.warehouse.close()


@pytest.fixture
def wh(isolated, tmp_path):
    warehouse = Warehouse(isolated, tmp_path)
    yield warehouse
    warehouse.close()


# ----------------------------------------------------------------------------- the checks


def fact_counts(wh: Warehouse) -> dict[str, int]:
    return {f: wh.marts(f"select count(*) from marts.{f}")[0][0] for f in FACTS}


def source_versions(wh: Warehouse, table: str, key: str) -> set[tuple]:
    return {(k, lu) for k, lu in wh.source(f"select {key}, last_updated from {table}")}


def fact_versions(wh: Warehouse, fact: str, key: str) -> list[tuple]:
    rows = wh.marts(f"select {key}, last_updated_date + last_updated_time from marts.{fact}")
    return [(k, lu) for k, lu in rows]


def foreign_keys(wh: Warehouse) -> dict[str, int]:
    rows = wh.marts(
        "select c.relname, count(*) from pg_constraint k "
        "join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace "
        "where k.contype = 'f' and n.nspname = 'marts' group by c.relname"
    )
    return dict((name, n) for name, n in rows)


def assert_marts_match_source(wh: Warehouse) -> None:
    """Current state of every fact and every dimension equals totesys, by plain SQL."""
    # one current row per source row, and the sums per currency agree
    for fact, (table, _key, _, _) in FACTS.items():
        assert (
            wh.marts(f"select count(*) from marts.{fact}_current")[0][0]
            == (wh.source(f"select count(*) from {table}")[0][0])
        ), fact
    expected = wh.source(
        "select c.currency_code, sum(s.units_sold), sum(s.units_sold * s.unit_price) "
        "from sales_order s join currency c using (currency_id) group by 1 order by 1"
    )
    actual = wh.marts(
        "select c.currency_code, sum(s.units_sold), sum(s.units_sold * s.unit_price) "
        "from marts.fact_sales_order_current s join marts.dim_currency c using (currency_id) "
        "group by 1 order by 1"
    )
    assert actual == expected
    expected = wh.source(
        "select c.currency_code, sum(p.item_quantity), sum(p.item_quantity * p.item_unit_price) "
        "from purchase_order p join currency c using (currency_id) group by 1 order by 1"
    )
    actual = wh.marts(
        "select c.currency_code, sum(p.item_quantity), sum(p.item_quantity * p.item_unit_price) "
        "from marts.fact_purchase_order_current p join marts.dim_currency c using (currency_id) "
        "group by 1 order by 1"
    )
    assert actual == expected
    expected = wh.source(
        "select c.currency_code, paid, count(*), sum(payment_amount) "
        "from payment join currency c using (currency_id) group by 1, 2 order by 1, 2"
    )
    actual = wh.marts(
        "select c.currency_code, paid, count(*), sum(payment_amount) "
        "from marts.fact_payment_current join marts.dim_currency c using (currency_id) "
        "group by 1, 2 order by 1, 2"
    )
    assert actual == expected

    # every column of a sample of current rows
    expected = wh.source(
        "select sales_order_id, created_at::date, created_at::time, last_updated::date, "
        "last_updated::time, staff_id, counterparty_id, units_sold, unit_price, currency_id, "
        "design_id, agreed_payment_date::date, agreed_delivery_date::date, "
        "agreed_delivery_location_id from sales_order "
        "where sales_order_id % 7 = 1 or last_updated <> created_at order by 1"
    )
    actual = wh.marts(
        "select sales_order_id, created_date, created_time, last_updated_date, "
        "last_updated_time, sales_staff_id, counterparty_id, units_sold, unit_price, currency_id, "
        "design_id, agreed_payment_date, agreed_delivery_date, agreed_delivery_location_id "
        "from marts.fact_sales_order_current where sales_order_id = any(:ids) order by 1",
        ids=[row[0] for row in expected],
    )
    assert actual == expected
    expected = wh.source(
        "select purchase_order_id, created_at::date, created_at::time, last_updated::date, "
        "last_updated::time, staff_id, counterparty_id, item_code, item_quantity, "
        "item_unit_price, currency_id, agreed_delivery_date::date, agreed_payment_date::date, "
        "agreed_delivery_location_id from purchase_order where purchase_order_id % 5 = 1 "
        "order by 1"
    )
    actual = wh.marts(
        "select purchase_order_id, created_date, created_time, last_updated_date, "
        "last_updated_time, staff_id, counterparty_id, item_code, item_quantity, "
        "item_unit_price, currency_id, agreed_delivery_date, agreed_payment_date, "
        "agreed_delivery_location_id from marts.fact_purchase_order_current "
        "where purchase_order_id = any(:ids) order by 1",
        ids=[row[0] for row in expected],
    )
    assert actual == expected
    expected = wh.source(
        "select payment_id, created_at::date, created_at::time, last_updated::date, "
        "last_updated::time, transaction_id, counterparty_id, payment_amount, currency_id, "
        "payment_type_id, paid, payment_date::date from payment "
        "where payment_id % 5 = 2 or last_updated <> created_at order by 1"
    )
    actual = wh.marts(
        "select payment_id, created_date, created_time, last_updated_date, last_updated_time, "
        "transaction_id, counterparty_id, payment_amount, currency_id, payment_type_id, paid, "
        "payment_date from marts.fact_payment_current where payment_id = any(:ids) order by 1",
        ids=[row[0] for row in expected],
    )
    assert actual == expected

    # dimensions: the latest of every member, joined members included
    assert wh.marts(
        "select location_id, address_line_1, address_line_2, district, city, postal_code, "
        "country, phone from marts.dim_location order by 1"
    ) == wh.source(
        "select address_id, address_line_1, address_line_2, district, city, postal_code, "
        "country, phone from address order by 1"
    )
    assert wh.marts(
        "select counterparty_id, counterparty_legal_name, counterparty_legal_address_line_1, "
        "counterparty_legal_address_line_2, counterparty_legal_district, counterparty_legal_city, "
        "counterparty_legal_postal_code, counterparty_legal_country, "
        "counterparty_legal_phone_number from marts.dim_counterparty order by 1"
    ) == wh.source(
        "select c.counterparty_id, c.counterparty_legal_name, a.address_line_1, "
        "a.address_line_2, a.district, a.city, a.postal_code, a.country, a.phone "
        "from counterparty c join address a on a.address_id = c.legal_address_id order by 1"
    )
    assert wh.marts(
        "select staff_id, first_name, last_name, department_name, location, email_address "
        "from marts.dim_staff order by 1"
    ) == wh.source(
        "select s.staff_id, s.first_name, s.last_name, d.department_name, "
        "coalesce(d.location, ''), s.email_address "
        "from staff s join department d using (department_id) order by 1"
    )
    assert wh.marts(
        "select design_id, design_name, file_location, file_name from marts.dim_design order by 1"
    ) == wh.source("select design_id, design_name, file_location, file_name from design order by 1")
    assert wh.marts(
        "select payment_type_id, payment_type_name from marts.dim_payment_type order by 1"
    ) == wh.source("select payment_type_id, payment_type_name::text from payment_type order by 1")
    assert wh.marts(
        "select transaction_id, transaction_type, sales_order_id, purchase_order_id "
        "from marts.dim_transaction order by 1"
    ) == wh.source(
        "select transaction_id, transaction_type::text, sales_order_id, purchase_order_id "
        "from transaction order by 1"
    )
    names = {"GBP": "Pound Sterling", "USD": "US Dollar", "EUR": "Euro"}
    currencies = wh.marts("select currency_code, currency_name from marts.dim_currency")
    assert {code: name for code, name in currencies} == {
        code: names[code] for [code] in wh.source("select currency_code from currency")
    }

    # dim_date: covers every date the facts reference, ISO weekdays and English names
    missing = wh.marts(
        "select d from (select created_date d from marts.fact_sales_order "
        "union select agreed_delivery_date from marts.fact_sales_order "
        "union select agreed_payment_date from marts.fact_purchase_order "
        "union select payment_date from marts.fact_payment) x "
        "where d not in (select date_id from marts.dim_date)"
    )
    assert missing == []
    assert wh.marts(
        "select day_of_week, day_name, month_name, quarter from marts.dim_date "
        "where date_id = '2024-12-29'"
    ) == [[7, "Sunday", "December", 4]]


def assert_every_version_once(wh: Warehouse, versions_seen: dict[str, set]) -> None:
    """Each fact holds every version ever committed in totesys (as seen), each exactly once."""
    for fact, (_, key, record_id, _) in FACTS.items():
        rows = fact_versions(wh, fact, key)
        assert len(rows) == len(set(rows)), f"{fact} holds a version twice"
        assert set(rows) == versions_seen[fact], fact
        ids = [r for [r] in wh.marts(f"select {record_id} from marts.{fact}")]
        assert len(ids) == len(set(ids))


# ----------------------------------------------------------------------------- the tests


@pytest.mark.slow
def test_marts_follow_source_through_rebuilds_and_updates(wh):
    """seed → raw → build (all green, marts equal source) → rebuild adds nothing and keeps the
    foreign keys → burst of new rows and updates → reload → build: updated rows have a second
    version, current views and dimensions show the new values, record ids never change."""
    wh.seed()
    wh.load_raw()
    out = wh.build()
    assert "ERROR=0" in out and "SKIP=0" in out

    seen = {fact: source_versions(wh, table, key) for fact, (table, key, _, _) in FACTS.items()}
    assert all(seen.values())
    assert_every_version_once(wh, seen)
    assert_marts_match_source(wh)
    first_ids = {
        fact: wh.marts(f"select {rid}, {key} from marts.{fact} order by 1")
        for fact, (_, key, rid, _) in FACTS.items()
    }

    # a second build with no new data inserts nothing, and the dimensions' FKs survive it
    before = fact_counts(wh)
    wh.load_raw()  # an empty manifest: every table current, no rows
    wh.build()
    assert fact_counts(wh) == before
    assert foreign_keys(wh) == {fact: n for fact, (_, _, _, n) in FACTS.items()}

    # a burst of activity, loaded and built
    old_orders = dict(wh.source("select sales_order_id, last_updated from sales_order"))
    old_addresses = dict(wh.source("select address_id, last_updated from address"))
    wh.burst()
    new_orders = dict(wh.source("select sales_order_id, last_updated from sales_order"))
    updated = [k for k, lu in old_orders.items() if new_orders[k] != lu]
    moved = [
        k
        for k, lu in wh.source("select address_id, last_updated from address")
        if old_addresses.get(k) not in (None, lu)
    ]
    assert updated and moved, "the burst must update orders and move an address"
    wh.load_raw()
    out = wh.build()
    assert "ERROR=0" in out and "SKIP=0" in out

    for fact, (table, key, _, _) in FACTS.items():
        seen[fact] |= source_versions(wh, table, key)
    assert_every_version_once(wh, seen)
    assert_marts_match_source(wh)  # includes moved addresses and renamed departments in dims
    history = wh.marts(
        "select sales_order_id, count(*) from marts.fact_sales_order "
        "where sales_order_id = any(:ids) group by 1",
        ids=updated,
    )
    assert {k: n for k, n in history} == {k: 2 for k in updated}
    for fact, (_, key, rid, _) in FACTS.items():
        kept = wh.marts(
            f"select {rid}, {key} from marts.{fact} where {rid} <= :top order by 1",
            top=first_ids[fact][-1][0],
        )
        assert kept == first_ids[fact], f"{fact} record ids changed"
    assert foreign_keys(wh) == {fact: n for fact, (_, _, _, n) in FACTS.items()}


def test_redelivered_versions_add_nothing(wh):
    """Every version delivered again (a replayed manifest, an overlapping window) and a build:
    the intermediate tables and facts gain no row, and the raw-vs-fact check still passes."""
    totesys_data.fill(wh.totesys)
    raw_from_source.load_raw(wh.totesys, wh.warehouse)
    wh.build()
    before = fact_counts(wh)
    raw_from_source.load_raw(wh.totesys, wh.warehouse, redeliver_all=True)
    assert wh.marts("select count(*) from raw.sales_order")[0][0] == 2 * before["fact_sales_order"]
    out = wh.build()
    assert "ERROR=0" in out
    assert fact_counts(wh) == before
    assert wh.marts("select count(*) from intermediate.int_sales_order__versions") == [
        [before["fact_sales_order"]]
    ]
    # and the docs site builds from it
    wh.dbt("docs", "generate")
    assert (wh.tmp / "target" / "catalog.json").exists()


def test_malformed_source_date_is_quarantined_naming_the_row(wh):
    """A malformed date no longer freezes the build: the row version is quarantined (named by
    key, reason and file), never loaded with a NULL date, and every other row loads."""
    totesys_data.fill(wh.totesys)
    raw_from_source.load_raw(wh.totesys, wh.warehouse)
    wh.warehouse.run(
        "update raw.sales_order set agreed_delivery_date = '2024-02-30' where sales_order_id = 17"
    )
    wh.warehouse.run("update raw.payment set payment_date = '31/01/2024' where payment_id = 23")
    done = wh.dbt("build", check=False)
    assert done.returncode == 0, done.stdout[-6000:]
    assert "WARN" in done.stdout
    assert "is_iso_date_totesys_sales_order_agreed_delivery_date" in done.stdout
    assert "is_iso_date_totesys_payment_payment_date" in done.stdout
    # the facts loaded every other row, and never the bad ones with NULL dates
    for fact, table, key, bad in (
        ("fact_sales_order", "sales_order", "sales_order_id", 17),
        ("fact_payment", "payment", "payment_id", 23),
    ):
        [[n]] = wh.marts(f"select count(distinct ({key}, last_updated)) from raw.{table}")
        assert wh.marts(f"select count(*) from marts.{fact}") == [[n - 1]], fact
        assert wh.marts(f"select count(*) from marts.{fact} where {key} = :k", k=bad) == [[0]]
    # the quarantine names them: table, key, reason with the raw text, file
    assert wh.marts(
        "select source_table, source_key, reason, resolved, source_file is not null "
        "from quarantine.quarantined_rows order by 1 desc"
    ) == [
        [
            "sales_order",
            17,
            "agreed_delivery_date is not a YYYY-MM-DD date: '2024-02-30'",
            False,
            True,
        ],
        ["payment", 23, "payment_date is not a YYYY-MM-DD date: '31/01/2024'", False, True],
    ]
    # the warning test's query still names the offending rows (key, raw text, file)
    [compiled] = [
        path
        for path in (wh.tmp / "target" / "compiled").rglob("*is_iso_date_totesys_sal*.sql")
        if "agreed_delivery_date" in path.read_text()
    ]
    offending = wh.warehouse.run(compiled.read_text())
    assert [(row[0], row[1]) for row in offending] == [(17, "2024-02-30")]


def test_source_freshness_is_per_table_from_the_manifests(wh):
    """A quiet table (currency: no new rows) stays fresh while manifests keep arriving; a table
    whose last manifest is 20 minutes old warns, 40 minutes old errors."""
    totesys_data.fill(wh.totesys)
    raw_from_source.load_raw(wh.totesys, wh.warehouse)
    wh.warehouse.run(
        "update raw._manifest_tables set loaded_at = loaded_at - interval '2 days' where seq = 1"
    )
    raw_from_source.load_raw(wh.totesys, wh.warehouse)  # 0 rows for every table, fresh
    wh.warehouse.run(
        "update raw._manifest_tables set loaded_at = now() - interval '20 minutes' "
        "where table_name = 'design'"
    )
    wh.warehouse.run(
        "update raw._manifest_tables set loaded_at = now() - interval '40 minutes' "
        "where table_name = 'staff'"
    )
    done = wh.dbt("source", "freshness", check=False)
    lines = {
        name: line
        for line in done.stdout.splitlines()
        for name in ("currency", "design", "staff", "sales_order")
        if f"freshness of totesys.{name} " in line and "START" not in line
    }
    assert "PASS" in lines["currency"] and "PASS" in lines["sales_order"]
    assert "WARN" in lines["design"]
    assert "ERROR STALE" in lines["staff"]


def test_unknown_currency_is_kept_and_flagged(wh):
    totesys_data.fill(wh.totesys)
    wh.totesys.run(
        "insert into currency (currency_id, currency_code, last_updated) "
        "values (4, 'XQQ', localtimestamp(3))"
    )
    raw_from_source.load_raw(wh.totesys, wh.warehouse)
    done = wh.dbt(
        "build", "--select", "+dim_currency", "--indirect-selection", "cautious", check=False
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert "WARN" in done.stdout and "has_members_in" in done.stdout
    assert wh.warehouse.run(
        "select currency_id, currency_code, currency_name from marts.dim_currency order by 1"
    ) == [[1, "GBP", "Pound Sterling"], [2, "USD", "US Dollar"], [3, "EUR", "Euro"], [4, "XQQ", ""]]
