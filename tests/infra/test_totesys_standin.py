"""The totesys stand-in: its schema is exactly docs/SOURCE.md's, seeding is deterministic and
realistic, simulated activity keeps every invariant, and the commands fail clearly.

The expected schema below is written out from docs/SOURCE.md by hand, never derived from schema.sql.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest

from infra.local.totesys import SeedError, create_schema, seed, simulate
from infra.local.totesys.invariants import violations

END = date(2024, 11, 1)  # an explicit end date: seeding is reproducible on any day
SMALL = 0.05  # about 560 sales orders and 230 purchase orders: quick, still varied
TOTES = str(Path(sys.executable).with_name("totes"))

NN, NULL = "NOT NULL", "NULL"
TS3 = "timestamp(3) without time zone"
CREATED = ("created_at", TS3, NN, "CURRENT_TIMESTAMP")
UPDATED = ("last_updated", TS3, NN, None)


def _id(table: str, column: str) -> tuple[str, str, str, str]:
    return (column, "integer", NN, f"nextval('{table}_{column}_seq'::regclass)")


# (column, type, nullability, default) in database order, from docs/SOURCE.md's tables.
SPEC_COLUMNS = {
    "address": [
        _id("address", "address_id"),
        ("address_line_1", "text", NN, None),
        ("address_line_2", "text", NULL, None),
        ("district", "text", NULL, None),
        ("city", "text", NN, None),
        ("postal_code", "text", NN, None),
        ("country", "text", NN, None),
        ("phone", "text", NN, None),
        CREATED,
        UPDATED,
    ],
    "counterparty": [
        _id("counterparty", "counterparty_id"),
        ("counterparty_legal_name", "text", NN, None),
        ("legal_address_id", "integer", NN, None),
        ("commercial_contact", "text", NULL, None),
        ("delivery_contact", "text", NULL, None),
        CREATED,
        UPDATED,
    ],
    "currency": [
        _id("currency", "currency_id"),
        ("currency_code", "character varying(3)", NN, None),
        CREATED,
        UPDATED,
    ],
    "department": [
        _id("department", "department_id"),
        ("department_name", "text", NN, None),
        ("location", "text", NULL, None),
        ("manager", "text", NULL, None),
        CREATED,
        UPDATED,
    ],
    "design": [
        _id("design", "design_id"),
        CREATED,
        ("design_name", "text", NN, None),
        ("file_location", "text", NN, None),
        ("file_name", "text", NN, None),
        UPDATED,
    ],
    "payment_type": [
        _id("payment_type", "payment_type_id"),
        ("payment_type_name", '"PaymentTypeName"', NN, None),
        CREATED,
        UPDATED,
    ],
    "staff": [
        _id("staff", "staff_id"),
        ("first_name", "text", NN, None),
        ("last_name", "text", NN, None),
        ("department_id", "integer", NN, None),
        ("email_address", "text", NN, None),
        CREATED,
        UPDATED,
    ],
    "sales_order": [
        _id("sales_order", "sales_order_id"),
        CREATED,
        UPDATED,
        ("design_id", "integer", NN, None),
        ("staff_id", "integer", NN, None),
        ("counterparty_id", "integer", NN, None),
        ("units_sold", "integer", NN, None),
        ("unit_price", "numeric(10,2)", NN, None),
        ("currency_id", "integer", NN, None),
        ("agreed_delivery_date", "text", NN, None),
        ("agreed_payment_date", "text", NN, None),
        ("agreed_delivery_location_id", "integer", NN, None),
    ],
    "purchase_order": [
        _id("purchase_order", "purchase_order_id"),
        CREATED,
        UPDATED,
        ("staff_id", "integer", NN, None),
        ("counterparty_id", "integer", NN, None),
        ("item_code", "text", NN, None),
        ("item_quantity", "integer", NN, None),
        ("item_unit_price", "numeric(10,2)", NN, None),
        ("currency_id", "integer", NN, None),
        ("agreed_delivery_date", "text", NN, None),
        ("agreed_payment_date", "text", NN, None),
        ("agreed_delivery_location_id", "integer", NN, None),
    ],
    "transaction": [
        _id("transaction", "transaction_id"),
        ("transaction_type", '"TransactionType"', NN, None),
        ("sales_order_id", "integer", NULL, None),
        ("purchase_order_id", "integer", NULL, None),
        CREATED,
        UPDATED,
    ],
    "payment": [
        _id("payment", "payment_id"),
        CREATED,
        UPDATED,
        ("transaction_id", "integer", NN, None),
        ("counterparty_id", "integer", NN, None),
        ("payment_amount", "numeric(10,2)", NN, None),
        ("currency_id", "integer", NN, None),
        ("payment_type_id", "integer", NN, None),
        ("paid", "boolean", NN, None),
        ("payment_date", "text", NN, None),
        ("company_ac_number", "integer", NN, None),
        ("counterparty_ac_number", "integer", NN, None),
    ],
    # Prisma's own bookkeeping table, in Prisma's real shape.
    "_prisma_migrations": [
        ("id", "character varying(36)", NN, None),
        ("checksum", "character varying(64)", NN, None),
        ("finished_at", "timestamp with time zone", NULL, None),
        ("migration_name", "character varying(255)", NN, None),
        ("logs", "text", NULL, None),
        ("rolled_back_at", "timestamp with time zone", NULL, None),
        ("started_at", "timestamp with time zone", NN, "now()"),
        ("applied_steps_count", "integer", NN, "0"),
    ],
}
BUSINESS_TABLES = [t for t in SPEC_COLUMNS if t != "_prisma_migrations"]
SPEC_PRIMARY_KEYS = {t: f"{t}_id" for t in BUSINESS_TABLES} | {"_prisma_migrations": "id"}

# "table.column": ("referenced table.column", on update, on delete)
SPEC_FOREIGN_KEYS = {
    "counterparty.legal_address_id": ("address.address_id", "CASCADE", "RESTRICT"),
    "staff.department_id": ("department.department_id", "CASCADE", "RESTRICT"),
    "sales_order.design_id": ("design.design_id", "CASCADE", "RESTRICT"),
    "sales_order.staff_id": ("staff.staff_id", "CASCADE", "RESTRICT"),
    "sales_order.counterparty_id": ("counterparty.counterparty_id", "CASCADE", "RESTRICT"),
    "sales_order.currency_id": ("currency.currency_id", "CASCADE", "RESTRICT"),
    "sales_order.agreed_delivery_location_id": ("address.address_id", "CASCADE", "RESTRICT"),
    "purchase_order.staff_id": ("staff.staff_id", "CASCADE", "RESTRICT"),
    "purchase_order.counterparty_id": ("counterparty.counterparty_id", "CASCADE", "RESTRICT"),
    "purchase_order.currency_id": ("currency.currency_id", "CASCADE", "RESTRICT"),
    "purchase_order.agreed_delivery_location_id": ("address.address_id", "CASCADE", "RESTRICT"),
    "transaction.sales_order_id": ("sales_order.sales_order_id", "CASCADE", "SET NULL"),
    "transaction.purchase_order_id": ("purchase_order.purchase_order_id", "CASCADE", "SET NULL"),
    "payment.transaction_id": ("transaction.transaction_id", "CASCADE", "RESTRICT"),
    "payment.counterparty_id": ("counterparty.counterparty_id", "CASCADE", "RESTRICT"),
    "payment.currency_id": ("currency.currency_id", "CASCADE", "RESTRICT"),
    "payment.payment_type_id": ("payment_type.payment_type_id", "CASCADE", "RESTRICT"),
}

SPEC_UNIQUE_INDEXES = {
    ("payment", "transaction_id"),
    ("transaction", "sales_order_id"),
    ("transaction", "purchase_order_id"),
}

SPEC_ENUMS = {
    "PaymentTypeName": ["SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND"],
    "TransactionType": ["SALE", "PURCHASE"],
}


# ---- helpers -----------------------------------------------------------------------------------


def scalar(conn, sql, **params):
    return conn.run(sql, **params)[0][0]


def data_fingerprint(conn) -> dict[str, str]:
    """md5 of every business table's rows in key order: equal fingerprints mean equal data."""
    return {
        table: scalar(
            conn,
            f'SELECT md5(string_agg(t::text, E\'\\n\' ORDER BY t."{table}_id")) FROM "{table}" t',
        )
        for table in BUSINESS_TABLES
    }


def count(conn, table) -> int:
    return scalar(conn, f'SELECT count(*) FROM "{table}"')


@pytest.fixture
def totesys(isolated):
    conn = isolated.totesys()
    yield conn
    conn.close()


@pytest.fixture
def seeded(totesys):
    seed(totesys, scale=SMALL, seed=42, end=END)
    return totesys


# ---- the schema --------------------------------------------------------------------------------


@pytest.mark.parametrize("table", list(SPEC_COLUMNS))
def test_columns_match_the_documented_source_in_order_type_nullability_and_default(totesys, table):
    create_schema(totesys)
    rows = totesys.run(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
        " CASE WHEN a.attnotnull THEN 'NOT NULL' ELSE 'NULL' END,"
        " pg_get_expr(d.adbin, d.adrelid)"
        " FROM pg_attribute a"
        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = to_regclass(:table) AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        table=f'"{table}"',
    )
    assert [tuple(r) for r in rows] == SPEC_COLUMNS[table]


def test_the_schema_holds_exactly_the_documented_tables(totesys):
    create_schema(totesys)
    tables = totesys.run(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    assert sorted(t for (t,) in tables) == sorted(SPEC_COLUMNS)


def test_primary_keys_are_the_id_columns(totesys):
    create_schema(totesys)
    rows = totesys.run(
        "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)"
        " WHERE c.contype = 'p' AND c.connamespace = 'public'::regnamespace"
    )
    assert {table.strip('"'): column for table, column in rows} == SPEC_PRIMARY_KEYS


def test_every_id_comes_from_an_owned_integer_sequence_named_table_pk_seq(totesys):
    create_schema(totesys)
    rows = totesys.run(
        "SELECT t.relname, a.attname, s.relname, format_type(q.seqtypid, NULL)"
        " FROM pg_depend d"
        " JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
        " JOIN pg_sequence q ON q.seqrelid = s.oid"
        " JOIN pg_class t ON t.oid = d.refobjid"
        " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid"
        " WHERE d.deptype = 'a'"
    )
    assert sorted(tuple(r) for r in rows) == sorted(
        (t, f"{t}_id", f"{t}_{t}_id_seq", "integer") for t in BUSINESS_TABLES
    )


def test_foreign_keys_cascade_on_update_and_restrict_or_set_null_on_delete(totesys):
    create_schema(totesys)
    rules = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
    rows = totesys.run(
        "SELECT a.attrelid::regclass::text, a.attname, fa.attrelid::regclass::text, fa.attname,"
        " c.confupdtype::text, c.confdeltype::text FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]"
        " WHERE c.contype = 'f' AND cardinality(c.conkey) = 1"
    )
    rows = [[name.strip('"') if i in (0, 2) else name for i, name in enumerate(r)] for r in rows]
    found = {
        f"{t}.{col}": (f"{ref}.{ref_col}", rules[upd], rules[dele])
        for t, col, ref, ref_col, upd, dele in rows
    }
    assert found == SPEC_FOREIGN_KEYS
    assert scalar(totesys, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == len(
        SPEC_FOREIGN_KEYS
    )


def test_unique_indexes_allow_one_transaction_per_order_and_one_payment_per_transaction(totesys):
    create_schema(totesys)
    rows = totesys.run(
        "SELECT t.relname, a.attname FROM pg_index i"
        " JOIN pg_class t ON t.oid = i.indrelid"
        " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]"
        " WHERE i.indisunique AND NOT i.indisprimary AND i.indnatts = 1"
        " AND t.relnamespace = 'public'::regnamespace"
    )
    assert {tuple(r) for r in rows} == SPEC_UNIQUE_INDEXES


def test_enum_types_have_the_documented_labels_in_order(totesys):
    create_schema(totesys)
    rows = totesys.run(
        "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)"
        " FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname"
    )
    assert dict((name, labels) for name, labels in rows) == SPEC_ENUMS


def test_prisma_migrations_is_created_empty(totesys):
    create_schema(totesys)
    assert count(totesys, "_prisma_migrations") == 0


# ---- seeding -----------------------------------------------------------------------------------


def test_the_same_seed_scale_and_end_give_identical_rows(stack, isolated, totesys):
    seed(totesys, scale=SMALL, seed=7, end=END)
    first = data_fingerprint(totesys)
    seed(totesys, scale=SMALL, seed=7, end=END, force=True)
    assert data_fingerprint(totesys) == first


def test_a_different_seed_gives_different_rows(totesys):
    seed(totesys, scale=SMALL, seed=7, end=END)
    first = data_fingerprint(totesys)
    seed(totesys, scale=SMALL, seed=8, end=END, force=True)
    second = data_fingerprint(totesys)
    assert all(first[t] != second[t] for t in ("address", "sales_order", "payment"))


def test_seeded_reference_tables_have_the_real_sizes_and_values(seeded):
    assert {t: count(seeded, t) for t in ("currency", "payment_type", "department", "staff")} == {
        "currency": 3,
        "payment_type": 4,
        "department": 8,
        "staff": 20,
    }
    assert count(seeded, "counterparty") == 20
    assert count(seeded, "address") == 30
    assert seeded.run("SELECT currency_code FROM currency ORDER BY currency_id") == [
        ["GBP"],
        ["USD"],
        ["EUR"],
    ]
    assert seeded.run("SELECT payment_type_name FROM payment_type ORDER BY 1") == [
        [name] for name in SPEC_ENUMS["PaymentTypeName"]
    ]
    assert {r[0] for r in seeded.run("SELECT location FROM department")} <= {"Manchester", "Leeds"}


def test_staff_emails_are_first_dot_last_at_terrifictotes(seeded):
    emails = [r[0] for r in seeded.run("SELECT email_address FROM staff")]
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+@terrifictotes\.com", e) for e in emails)


def test_seeded_text_includes_apostrophes_and_non_ascii_letters(seeded):
    names = [r[0] for r in seeded.run("SELECT first_name || ' ' || last_name FROM staff")]
    assert any("'" in n for n in names)
    assert any(not n.isascii() for n in names)


def test_scale_multiplies_order_volume(totesys):
    seed(totesys, scale=0.1, seed=42, end=END)
    assert count(totesys, "sales_order") == round(11_187 * 0.1)
    assert count(totesys, "purchase_order") == round(4_650 * 0.1)


def test_seeded_orders_are_in_the_real_ranges(seeded):
    (lo_units, hi_units, lo_price, hi_price, currencies) = seeded.run(
        "SELECT min(units_sold), max(units_sold), min(unit_price), max(unit_price),"
        " count(DISTINCT currency_id) FROM sales_order"
    )[0]
    assert lo_units >= 1001 and hi_units <= 99973
    assert lo_price >= 2 and hi_price <= 4
    assert currencies == 3
    rows = seeded.run("SELECT item_code, item_quantity, item_unit_price FROM purchase_order")
    assert all(re.fullmatch(r"[A-Z0-9]{7}", code) for code, _, _ in rows)
    assert all(1 <= q <= 999 and 3.32 <= p <= 999.07 for _, q, p in rows)


def test_agreed_dates_follow_their_order_by_a_few_days(seeded):
    gaps = seeded.run(
        "SELECT min(agreed_delivery_date::date - created_at::date),"
        " max(agreed_delivery_date::date - created_at::date),"
        " min(agreed_payment_date::date - created_at::date) FROM sales_order"
    )[0]
    assert gaps[0] >= 1 and gaps[1] <= 10 and gaps[2] >= 1


def test_seeded_orders_span_the_first_day_to_the_end_date(seeded):
    first, last = seeded.run("SELECT min(created_at), max(created_at) FROM sales_order")[0]
    assert date(2022, 11, 3) <= first.date() <= date(2022, 11, 10)
    assert date(2024, 10, 1) <= last.date() < END


def test_seeded_designs_grow_over_time_and_look_like_the_real_ones(seeded):
    assert 400 <= count(seeded, "design") <= 550
    names = [r[0] for r in seeded.run("SELECT file_name FROM design")]
    assert all(re.fullmatch(r"[a-z]+-\d{8}-[a-z]{4}\.json", n) for n in names)
    late = scalar(
        seeded,
        "SELECT count(*) FROM sales_order so JOIN design d USING (design_id)"
        " WHERE d.created_at > so.created_at",
    )
    assert late == 0  # no order uses a design that did not exist yet


def test_seeded_ids_are_contiguous_from_one(seeded):
    for table in BUSINESS_TABLES:
        n, low, high = seeded.run(
            f'SELECT count(*), min("{table}_id"), max("{table}_id") FROM "{table}"'
        )[0]
        assert (low, high) == (1, n), table


def test_seeded_rows_have_last_updated_equal_to_created_at(seeded):
    for table in BUSINESS_TABLES:
        assert (
            scalar(seeded, f'SELECT count(*) FROM "{table}" WHERE last_updated <> created_at') == 0
        )


def test_some_seeded_timestamps_fall_on_a_whole_second(seeded):
    whole = scalar(
        seeded,
        "SELECT count(*) FROM sales_order WHERE created_at = date_trunc('second', created_at)",
    )
    fractional = scalar(
        seeded,
        "SELECT count(*) FROM sales_order WHERE created_at <> date_trunc('second', created_at)",
    )
    assert whole > 0 and fractional > whole


def test_seeding_keeps_every_invariant(seeded):
    assert count(seeded, "transaction") == count(seeded, "sales_order") + count(
        seeded, "purchase_order"
    )
    assert count(seeded, "payment") == count(seeded, "transaction")
    assert violations(seeded) == {}


def test_paid_is_mixed_and_nothing_is_paid_before_its_date(seeded):
    paid, unpaid = seeded.run(
        "SELECT count(*) FILTER (WHERE paid), count(*) FILTER (WHERE NOT paid) FROM payment"
    )[0]
    assert paid > 0 and unpaid > 0
    early = scalar(
        seeded, "SELECT count(*) FROM payment WHERE paid AND payment_date::date >= :end", end=END
    )
    assert early == 0


def test_sequences_continue_after_the_seeded_ids(seeded):
    next_id = scalar(
        seeded,
        "INSERT INTO currency (currency_code, last_updated) VALUES ('CHF', LOCALTIMESTAMP)"
        " RETURNING currency_id",
    )
    assert next_id == 4


def test_violations_reports_a_broken_invariant(seeded):
    seeded.run("UPDATE payment SET payment_amount = payment_amount + 1 WHERE payment_id = 1")
    assert list(violations(seeded)) == [
        "a payment copies its order's counterparty, currency, amount and date"
    ]


# ---- refusing to destroy data ------------------------------------------------------------------


def test_seed_refuses_a_database_holding_other_tables(totesys):
    totesys.run("CREATE TABLE invoices (id integer)")
    with pytest.raises(SeedError, match="invoices"):
        seed(totesys, scale=SMALL, end=END)
    assert scalar(totesys, "SELECT to_regclass('sales_order') IS NULL")


def test_force_seeds_beside_other_tables_and_keeps_them(totesys):
    totesys.run("CREATE TABLE invoices (id integer)")
    totesys.run("INSERT INTO invoices VALUES (1)")
    seed(totesys, scale=SMALL, end=END, force=True)
    assert count(totesys, "invoices") == 1
    assert count(totesys, "sales_order") > 0


def test_seed_refuses_a_totesys_that_already_holds_data(seeded):
    before = data_fingerprint(seeded)
    with pytest.raises(SeedError, match="already holds data"):
        seed(seeded, scale=SMALL, seed=9, end=END)
    assert data_fingerprint(seeded) == before


def test_force_drops_and_reseeds_a_totesys_with_data(seeded):
    simulate(seeded, seed=1)
    seed(seeded, scale=SMALL, seed=42, end=END, force=True)
    assert count(seeded, "sales_order") == round(11_187 * SMALL)


def test_if_empty_leaves_a_seeded_totesys_alone(seeded):
    simulate(seeded, seed=1)
    before = data_fingerprint(seeded)
    report = seed(seeded, scale=SMALL, seed=9, end=END, if_empty=True)
    assert report.skipped
    assert data_fingerprint(seeded) == before


def test_if_empty_seeds_an_empty_database(totesys):
    report = seed(totesys, scale=SMALL, end=END, if_empty=True)
    assert not report.skipped
    assert count(totesys, "sales_order") > 0


# ---- simulated activity ------------------------------------------------------------------------


def test_simulate_adds_orders_with_their_transactions_and_payments(seeded):
    before = {t: count(seeded, t) for t in ("sales_order", "purchase_order", "transaction")}
    result = simulate(seeded, orders=6, purchases=4, updates=0, payments_paid=0, seed=3)
    assert count(seeded, "sales_order") == before["sales_order"] + 6
    assert count(seeded, "purchase_order") == before["purchase_order"] + 4
    assert count(seeded, "transaction") == before["transaction"] + 10
    assert len(result.ids("payment", "insert")) == 10
    assert violations(seeded) == {}


def test_simulate_applies_each_kind_of_update(seeded):
    result = simulate(
        seeded,
        orders=0,
        purchases=0,
        updates=3,
        payments_paid=4,
        address_moves=2,
        department_renames=1,
        new_designs=2,
        seed=5,
    )
    counts = result.counts()
    assert counts[("sales_order", "update")] == 3
    assert counts[("payment", "update")] >= 4
    assert counts[("address", "update")] == 2
    assert counts[("department", "update")] == 1
    assert counts[("design", "insert")] == 2
    paid = result.ids("payment", "update")
    assert (
        scalar(
            seeded, "SELECT count(*) FROM payment WHERE payment_id = ANY(:ids) AND paid", ids=paid
        )
        >= 4
    )


def test_simulate_keeps_every_invariant(seeded):
    simulate(seeded, orders=15, purchases=10, updates=10, payments_paid=10, address_moves=3, seed=2)
    assert violations(seeded) == {}
    assert count(seeded, "transaction") == count(seeded, "sales_order") + count(
        seeded, "purchase_order"
    )
    assert count(seeded, "payment") == count(seeded, "transaction")


def test_updated_rows_carry_the_database_clock_of_their_transaction(seeded):
    result = simulate(seeded, orders=0, purchases=0, updates=5, payments_paid=5, seed=4)
    latest: dict[tuple[str, int], datetime] = {}
    for change in result.changes:  # a row changed twice keeps the later transaction's clock
        if change.action == "update":
            latest[(change.table, change.id)] = change.at
    assert latest
    for (table, row_id), at in latest.items():
        created, updated = seeded.run(
            f'SELECT created_at, last_updated FROM "{table}" WHERE "{table}_id" = :id', id=row_id
        )[0]
        assert updated == at
        assert updated > created


def test_new_rows_are_stamped_by_the_database_clock(seeded):
    clock_before = scalar(seeded, "SELECT (current_timestamp AT TIME ZONE 'UTC')::timestamp(3)")
    result = simulate(seeded, orders=3, purchases=1, updates=0, payments_paid=0, seed=6)
    inserts = [change for change in result.changes if change.action == "insert"]
    assert len(inserts) == (3 + 1) * 3 + 1  # each order with its transaction and payment; a design
    for change in inserts:
        created, updated = seeded.run(
            f'SELECT created_at, last_updated FROM "{change.table}"'
            f' WHERE "{change.table}_id" = :id',
            id=change.id,
        )[0]
        assert created == updated == change.at
        assert change.at >= clock_before


def test_simulate_refuses_an_unseeded_database(totesys):
    create_schema(totesys)
    from infra.local.totesys.simulate import SimulationError

    with pytest.raises(SimulationError, match="totes seed"):
        simulate(totesys)


# ---- the commands ------------------------------------------------------------------------------


def test_seed_command_reports_an_unreachable_database_clearly():
    done = subprocess.run(
        [TOTES, "seed", "--dsn", "postgresql://nobody@/nope?host=/nonexistent"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("totes seed: cannot connect to nobody@")
    assert "Traceback" not in done.stderr


def test_seed_and_simulate_commands_write_to_the_database_in_the_environment(isolated):
    env = isolated.env()
    seeded = subprocess.run(
        [TOTES, "seed", "--scale", "0.01", "--end-date", END.isoformat()],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert seeded.returncode == 0, seeded.stderr
    simulated = subprocess.run(
        [TOTES, "simulate", "--orders", "2", "--purchases", "1", "--updates", "0", "--seed", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert simulated.returncode == 0, simulated.stderr
    assert "sales_order: 2 inserted" in simulated.stdout
    conn = isolated.totesys()
    try:
        assert count(conn, "sales_order") == round(11_187 * 0.01) + 2
    finally:
        conn.close()


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE sales_order ALTER COLUMN unit_price TYPE numeric(12,2),"
        " ALTER COLUMN units_sold TYPE bigint",
        "ALTER TABLE sales_order ALTER COLUMN sales_order_id TYPE bigint",
        "ALTER TABLE design ALTER COLUMN design_name TYPE varchar(200)",
        "ALTER TABLE payment ALTER COLUMN payment_amount TYPE numeric(14,4)",
    ],
)
def test_simulate_keeps_working_after_a_source_column_changes_type(seeded, change):
    seeded.run(change)
    result = simulate(seeded, orders=4, purchases=2, updates=4, payments_paid=2, seed=8)
    assert len(result.ids("sales_order", "insert")) == 4
    assert len(result.ids("sales_order", "update")) == 4
    assert violations(seeded) == {}
