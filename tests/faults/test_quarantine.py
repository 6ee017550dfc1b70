"""Quarantine instead of a global freeze: a row version that breaks a rule (an unparseable date,
a negative quantity) is kept out of the facts and listed in `quarantine.quarantined_rows` with
its reason, key and file, while every other row reaches the marts in the same cycle and an
alert counts the batch; a corrected source row flows on the next cycle and resolves the entry.
A new enum value (payment type CRYPTO) flows into the dimension and the fact with a warning.

Everything runs whole cycles (`totes.cycle.run_cycle`) on the real local stack.
"""

from __future__ import annotations

from datetime import date

import pytest
from support.cycles import alerts

from infra.local.totesys import seed
from totes import cycle

# One worker runs the module: the tests that start after a first cycle share its template.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="faults-quarantine")]

FACTS = {  # fact → (source table, key, record id)
    "fact_sales_order": ("sales_order", "sales_order_id", "sales_record_id"),
    "fact_purchase_order": ("purchase_order", "purchase_order_id", "purchase_record_id"),
    "fact_payment": ("payment", "payment_id", "payment_record_id"),
}
QUARANTINE = "quarantine.quarantined_rows"


def run(conn, sql: str, **params) -> list[list]:
    return conn.run(sql, **params)


def seed_the_source(isolated) -> None:
    totesys = isolated.totesys()
    try:
        seed(totesys, scale=0.05, end=date(2024, 11, 1))
    finally:
        totesys.close()


def seeded_and_first_cycle(isolated, work_dir) -> None:
    """The beginning most tests here share, built once per worker (tests/support/templates.py):
    a seeded totesys and a first clean cycle."""
    seed_the_source(isolated)
    first = cycle.run_cycle(isolated.settings, work_dir=work_dir, dbt_docs=False)
    assert first.ok, first.describe()


def helper(isolated, sns_queue, tmp_path):
    """Connections to both databases, cycles with alerts to a fresh topic, and those alerts."""
    topic, queue_url = sns_queue
    settings = isolated.settings.with_(alert_topic_arn=topic)
    totesys, warehouse = isolated.totesys(), isolated.warehouse()

    class Env:
        source = totesys
        marts = warehouse

        @staticmethod
        def cycle() -> cycle.CycleResult:
            return cycle.run_cycle(settings, work_dir=tmp_path / "runs", dbt_docs=False)

        @staticmethod
        def alerts() -> list[dict]:
            return alerts(isolated, queue_url)

        @staticmethod
        def close() -> None:
            totesys.close()
            warehouse.close()

    return Env


@pytest.fixture
def env(isolated, sns_queue, tmp_path):
    """A seeded totesys, its empty warehouse, alerts to a fresh topic; yields a small helper."""
    seed_the_source(isolated)
    env = helper(isolated, sns_queue, tmp_path)
    yield env
    env.close()


@pytest.fixture
def cycled(from_template, sns_queue, tmp_path):
    """As `env`, after a first clean cycle (`seeded_and_first_cycle`, from the worker's copy)."""
    isolated = from_template("quarantine", seeded_and_first_cycle, tmp_path / "runs")
    env = helper(isolated, sns_queue, tmp_path)
    yield env
    env.close()


def change_source(conn, table: str, key: str, key_value: int, assignment: str) -> None:
    """An update as the business makes it: the value and a new `last_updated`."""
    conn.run(
        f"update {table} set {assignment}, last_updated = localtimestamp(3) where {key} = :key",
        key=key_value,
    )


def assert_marts_equal_source(env) -> None:
    """Every fact's current state equals the source, every column; raw holds every version."""
    for fact, (table, _, _) in FACTS.items():
        assert run(env.marts, f"select count(*) from marts.{fact}_current") == run(
            env.source, f"select count(*) from {table}"
        ), fact
    expected = run(
        env.source,
        "select sales_order_id, created_at::date, created_at::time, last_updated::date, "
        "last_updated::time, staff_id, counterparty_id, units_sold, unit_price, currency_id, "
        "design_id, agreed_payment_date::date, agreed_delivery_date::date, "
        "agreed_delivery_location_id from sales_order order by 1",
    )
    actual = run(
        env.marts,
        "select sales_order_id, created_date, created_time, last_updated_date, "
        "last_updated_time, sales_staff_id, counterparty_id, units_sold, unit_price, currency_id, "
        "design_id, agreed_payment_date, agreed_delivery_date, agreed_delivery_location_id "
        "from marts.fact_sales_order_current order by 1",
    )
    assert actual == expected
    expected = run(
        env.source,
        "select payment_id, last_updated, payment_type_id, payment_amount, paid, "
        "payment_date::date from payment order by 1",
    )
    actual = run(
        env.marts,
        "select payment_id, last_updated_date + last_updated_time, payment_type_id, "
        "payment_amount, paid, payment_date from marts.fact_payment_current order by 1",
    )
    assert actual == expected
    assert run(
        env.marts,
        "select payment_type_id, payment_type_name from marts.dim_payment_type order by 1",
    ) == run(
        env.source, "select payment_type_id, payment_type_name::text from payment_type order by 1"
    )
    for _, (table, key, _) in FACTS.items():
        raw = run(env.marts, f"select distinct {key}, last_updated from raw.{table}")
        assert {tuple(r) for r in run(env.source, f"select {key}, last_updated from {table}")} <= {
            tuple(r) for r in raw
        }


def test_a_bad_date_is_quarantined_not_a_freeze_and_the_correction_resolves_it(env):
    [[order]] = run(env.source, "select min(sales_order_id) from sales_order")
    change_source(
        env.source, "sales_order", "sales_order_id", order, "agreed_delivery_date = 'not-a-date'"
    )
    [[bad_at]] = run(
        env.source, "select last_updated from sales_order where sales_order_id = :k", k=order
    )

    first = env.cycle()

    # every other row reaches the marts in the same cycle
    assert first.ok, first.describe()
    for fact, (table, _, _) in FACTS.items():
        [[n]] = run(env.source, f"select count(*) from {table}")
        expected = n - 1 if table == "sales_order" else n
        assert run(env.marts, f"select count(*) from marts.{fact}_current") == [[expected]], fact
    assert run(
        env.marts,
        "select count(*) from marts.fact_sales_order where sales_order_id = :k",
        k=order,
    ) == [[0]]
    # the bad version is listed with its reason, key and file
    [entry] = run(
        env.marts,
        f"select source_table, source_key, last_updated, reason, source_file, manifest_seq, "
        f"resolved from {QUARANTINE}",
    )
    table, key, last_updated, reason, source_file, seq, resolved = entry
    assert (table, key, last_updated, resolved) == ("sales_order", order, bad_at, False)
    assert "agreed_delivery_date" in reason and "not-a-date" in reason
    assert (
        run(
            env.marts,
            "select count(*) from raw.sales_order where _source_file = :f and _manifest_seq = :s",
            f=source_file,
            s=seq,
        )[0][0]
        > 0
    )
    # the dbt result and an alert count it
    assert first.step("dbt").detail.get("quarantined") == 1
    [alert] = env.alerts()
    assert alert["alert"] == "totes-rows-quarantined"
    assert alert["quarantined"] == 1
    assert alert["rows"][0]["source_table"] == "sales_order"
    assert alert["rows"][0]["source_key"] == order

    # the business corrects the row: the next cycle brings the marts back to the source
    change_source(
        env.source, "sales_order", "sales_order_id", order, "agreed_delivery_date = '2024-11-05'"
    )
    second = env.cycle()
    assert second.ok, second.describe()
    assert run(
        env.marts,
        "select agreed_delivery_date from marts.fact_sales_order_current where sales_order_id = :k",
        k=order,
    ) == [[date(2024, 11, 5)]]
    assert run(env.marts, f"select resolved from {QUARANTINE}") == [[True]]
    assert second.step("dbt").detail.get("quarantined") == 0
    assert env.alerts() == []  # nothing new quarantined
    assert_marts_equal_source(env)


def test_a_negative_quantity_is_quarantined_with_its_reason(cycled):
    env = cycled
    [[order]] = run(env.source, "select max(sales_order_id) from sales_order")
    [[before]] = run(
        env.marts,
        "select units_sold from marts.fact_sales_order_current where sales_order_id = :k",
        k=order,
    )
    change_source(env.source, "sales_order", "sales_order_id", order, "units_sold = -5")

    later = env.cycle()

    assert later.ok, later.describe()
    [[reason, resolved]] = run(
        env.marts,
        f"select reason, resolved from {QUARANTINE} where source_key = :k",
        k=order,
    )
    assert "units_sold" in reason and not resolved
    # the fact keeps the last good version; the -5 never lands
    assert run(
        env.marts,
        "select units_sold from marts.fact_sales_order_current where sales_order_id = :k",
        k=order,
    ) == [[before]]
    assert run(env.marts, "select count(*) from marts.fact_sales_order where units_sold < 0") == [
        [0]
    ]
    [alert] = [a for a in env.alerts() if a.get("alert") == "totes-rows-quarantined"]
    assert alert["quarantined"] == 1


def test_a_new_payment_type_flows_into_the_dimension_and_the_fact_with_a_warning(cycled):
    env = cycled
    env.source.run("""alter type "PaymentTypeName" add value 'CRYPTO'""")
    env.source.run(
        "insert into payment_type (payment_type_id, payment_type_name, created_at, last_updated) "
        "values (5, 'CRYPTO', localtimestamp(3), localtimestamp(3))"
    )
    [[payment]] = run(env.source, "select min(payment_id) from payment")
    change_source(env.source, "payment", "payment_id", payment, "payment_type_id = 5")

    later = env.cycle()

    assert later.ok, later.describe()
    assert later.step("dbt").detail["warnings"] >= 1
    assert [5, "CRYPTO"] in run(
        env.marts, "select payment_type_id, payment_type_name from marts.dim_payment_type"
    )
    assert run(
        env.marts,
        "select payment_type_id from marts.fact_payment_current where payment_id = :k",
        k=payment,
    ) == [[5]]
    assert run(env.marts, f"select count(*) from {QUARANTINE}") == [[0]]
    assert_marts_equal_source(env)


def dim_staff_from_source(conn) -> list[list]:
    """dim_staff as the source defines it: staff joined to its department ('' when missing)."""
    return run(
        conn,
        "select s.staff_id, s.first_name, s.last_name, coalesce(d.department_name, ''), "
        "coalesce(d.location, ''), s.email_address from staff as s "
        "left join department as d using (department_id) order by 1",
    )


def test_a_null_in_a_dimension_attribute_keeps_the_last_good_member_and_the_correction_heals(
    cycled,
):
    # A source that loosened a constraint: NULLs the warehouse's dimensions do not allow.
    env = cycled
    env.source.run("alter table staff alter column first_name drop not null")
    env.source.run("alter table staff alter column last_name drop not null")
    [[member, first_name]] = run(
        env.source, "select staff_id, first_name from staff order by staff_id limit 1"
    )
    change_source(env.source, "staff", "staff_id", member, "first_name = null")
    [[newcomer]] = run(
        env.source,
        "insert into staff (first_name, last_name, department_id, email_address, created_at, "
        "last_updated) select 'Nia', null, department_id, 'nia@terrifictotes.com', "
        "localtimestamp(3), localtimestamp(3) from staff where staff_id = :k returning staff_id",
        k=member,
    )
    [[order]] = run(env.source, "select min(sales_order_id) from sales_order")
    change_source(env.source, "sales_order", "sales_order_id", order, f"staff_id = {newcomer}")

    first = env.cycle()

    # no freeze: the facts and every other member still arrive in the same cycle
    assert first.ok, first.describe()
    assert run(
        env.marts,
        "select sales_staff_id from marts.fact_sales_order_current where sales_order_id = :k",
        k=order,
    ) == [[newcomer]]
    # the known member keeps its last good version; the new one is kept with the empty value
    assert run(
        env.marts, "select first_name from marts.dim_staff where staff_id = :k", k=member
    ) == [[first_name]]
    assert run(
        env.marts,
        "select first_name, last_name from marts.dim_staff where staff_id = :k",
        k=newcomer,
    ) == [["Nia", ""]]
    listed = run(
        env.marts,
        f"select source_table, source_key, reason, resolved from {QUARANTINE} order by 2",
    )
    assert listed == [
        ["staff", member, "first_name is NULL", False],
        ["staff", newcomer, "last_name is NULL", False],
    ]
    assert first.step("dbt").detail.get("quarantined") == 2
    [alert] = [a for a in env.alerts() if a.get("alert") == "totes-rows-quarantined"]
    assert alert["quarantined"] == 2

    # the business fills the names in: the next cycle brings dim_staff back to the source
    change_source(env.source, "staff", "staff_id", member, f"first_name = '{first_name}'")
    change_source(env.source, "staff", "staff_id", newcomer, "last_name = 'Okafor'")
    second = env.cycle()
    assert second.ok, second.describe()
    assert run(env.marts, f"select bool_and(resolved) from {QUARANTINE}") == [[True]]
    assert second.step("dbt").detail.get("quarantined") == 0
    assert run(
        env.marts,
        "select staff_id, first_name, last_name, department_name, location, email_address "
        "from marts.dim_staff order by 1",
    ) == dim_staff_from_source(env.source)
    assert env.alerts() == []
    assert_marts_equal_source(env)
