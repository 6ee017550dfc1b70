"""Business activity against a seeded totesys, written the way the app writes it.

Every change runs in its own short transaction (an order with its transaction and payment is one
unit of work, like the app's), and every `last_updated` comes from the database clock of that
transaction, never from Python, so the rows look exactly like production's: timestamp(3) UTC
wall clock, rounded by Postgres. Invariants hold after every transaction: one transaction per
order, one payment per transaction, payment amount = quantity x unit price, types consistent.

Every bound value is cast to its column's type as the catalog has it now (`{table.column}` in a
statement): Postgres deduces an untyped parameter's type from where it is used, and a value used
twice (a name, an order id) stops with "inconsistent types deduced" once a column's type changes.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import pg8000.native
from faker import Faker

from infra.local.totesys.generate import DESIGN_NAMES, FILE_LOCATIONS

DEPARTMENT_NAMES = (
    "Sales & Marketing",
    "Procurement",
    "Logistics",
    "Finance, Risk & Legal",
    "People",
    "Estates",
    "Customer Care",
    "Operations",
)
# Moves go abroad too: these locales bring commas, apostrophes and accents into addresses.
MOVE_LOCALES = ("en_GB", "fr_FR", "de_DE", "en_IE", "it_IT")
CANDIDATES = 2000


class SimulationError(RuntimeError):
    """The database cannot take simulated activity (for example, it was never seeded)."""


@dataclass(frozen=True)
class Change:
    table: str
    action: str  # "insert", "update" or "delete"
    id: int
    at: datetime  # the database clock of the transaction that made it (= the row's last_updated)


@dataclass
class SimulationResult:
    changes: list[Change] = field(default_factory=list)

    def ids(self, table: str, action: str | None = None) -> list[int]:
        return [c.id for c in self.changes if c.table == table and action in (None, c.action)]

    def counts(self) -> dict[tuple[str, str], int]:
        counted: dict[tuple[str, str], int] = defaultdict(int)
        for change in self.changes:
            counted[(change.table, change.action)] += 1
        return dict(counted)

    def describe(self) -> list[str]:
        """One line per table and action: 'sales_order: 20 inserted (ids 11188-11207)'."""
        lines = []
        for (table, action), n in sorted(self.counts().items()):
            ids = sorted(set(self.ids(table, action)))
            lines.append(f"{table}: {n} {action.rstrip('e')}ed (ids {_ranges(ids)})")
        return lines or ["nothing changed"]


def simulate(
    conn: pg8000.native.Connection,
    orders: int = 20,
    purchases: int = 8,
    updates: int = 5,
    payments_paid: int = 5,
    address_moves: int = 1,
    department_renames: int = 1,
    new_designs: int = 1,
    seed: int | None = None,
    deletes: int = 0,
) -> SimulationResult:
    """Apply one burst of activity; returns every row it inserted, updated or deleted, with
    its clock. `deletes` rows are deleted as the foreign keys allow: an order's payment, then
    its transaction, then the order (sales and purchase orders, spread over the whole table),
    one order per transaction; a remainder under 3 deletes a payment (and its transaction)."""
    app = _App(conn, random.Random(seed), Faker(list(MOVE_LOCALES)))
    app.faker.seed_instance(seed)
    for _ in range(new_designs):
        app.new_design()
    for _ in range(orders):
        app.new_sales_order()
    for _ in range(purchases):
        app.new_purchase_order()
    for order_id in app.pick(PICK_UNPAID_SALES_ORDERS, updates):
        app.amend_sales_order(order_id)
    for payment_id in app.pick(PICK_UNPAID_PAYMENTS, payments_paid):
        app.pay(payment_id)
    for counterparty_id in app.pick(PICK_COUNTERPARTIES, address_moves):
        app.move_legal_address(counterparty_id)
    for department_id in app.pick(PICK_DEPARTMENTS, department_renames):
        app.rename_department(department_id)
    if deletes > 0:
        app.delete_orders(deletes)
    return app.result


class _App:
    """What the totesys application does, one business action per database transaction."""

    def __init__(self, conn: pg8000.native.Connection, rng: random.Random, faker: Faker) -> None:
        self.conn, self.rng, self.faker = conn, rng, faker
        self.result = SimulationResult()
        self.types = _ColumnTypes(conn)
        self.refs = {
            name: [row[0] for row in conn.run(sql)]
            for name, sql in (
                ("design", "SELECT design_id FROM design ORDER BY 1"),
                ("staff", "SELECT staff_id FROM staff ORDER BY 1"),
                ("counterparty", "SELECT counterparty_id FROM counterparty ORDER BY 1"),
                ("currency", "SELECT currency_id FROM currency ORDER BY 1"),
                ("address", "SELECT address_id FROM address ORDER BY 1"),
            )
        }
        empty = [name for name, ids in self.refs.items() if not ids]
        if empty:
            raise SimulationError(f"totesys has no {', '.join(empty)} rows: run `totes seed` first")

    # ---- new rows --------------------------------------------------------------------------

    def new_design(self) -> None:
        name = self.rng.choice(DESIGN_NAMES)
        suffix = "".join(self.rng.choices("abcdefghijklmnopqrstuvwxyz", k=4))
        with self._transaction() as at:
            design_id = self._one(
                "INSERT INTO design (design_name, file_location, file_name, last_updated)"
                " VALUES (CAST(:name AS {design.design_name}),"
                " CAST(:location AS {design.file_location}),"
                " lower(CAST(:name AS {design.design_name})) || '-'"
                " || to_char(LOCALTIMESTAMP, 'YYYYMMDD') || '-' || CAST(:suffix AS text)"
                " || '.json', LOCALTIMESTAMP) RETURNING design_id",
                name=name,
                location=self.rng.choice(FILE_LOCATIONS),
                suffix=suffix,
            )
            self._record("design", "insert", design_id, at)
        self.refs["design"].append(design_id)

    def new_sales_order(self) -> None:
        with self._transaction() as at:
            order_id = self._one(
                NEW_SALES_ORDER,
                design=self._ref("design"),
                staff=self._ref("staff"),
                counterparty=self._ref("counterparty"),
                units=self.rng.randint(1001, 99973),
                price=Decimal(self.rng.randint(200, 400)) / 100,
                currency=self._ref("currency"),
                delivery_days=self.rng.randint(2, 7),
                payment_days=self.rng.randint(1, 7),
                location=self._ref("address"),
            )
            self._record("sales_order", "insert", order_id, at)
            self._transaction_and_payment(at, sales_order_id=order_id)

    def new_purchase_order(self) -> None:
        code = "".join(self.rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=7))
        with self._transaction() as at:
            order_id = self._one(
                NEW_PURCHASE_ORDER,
                staff=self._ref("staff"),
                counterparty=self._ref("counterparty"),
                code=code,
                quantity=self.rng.randint(1, 999),
                price=Decimal(self.rng.randint(332, 99907)) / 100,
                currency=self._ref("currency"),
                delivery_days=self.rng.randint(2, 7),
                payment_days=self.rng.randint(1, 7),
                location=self._ref("address"),
            )
            self._record("purchase_order", "insert", order_id, at)
            self._transaction_and_payment(at, purchase_order_id=order_id)

    def _transaction_and_payment(
        self, at: datetime, sales_order_id: int | None = None, purchase_order_id: int | None = None
    ) -> None:
        sale = sales_order_id is not None
        transaction_id = self._one(
            NEW_TRANSACTION,
            kind="SALE" if sale else "PURCHASE",
            sales_order_id=sales_order_id,
            purchase_order_id=purchase_order_id,
        )
        self._record("transaction", "insert", transaction_id, at)
        payment_id = self._one(
            NEW_PAYMENT,
            transaction_id=transaction_id,
            company_ac=self.rng.randint(10_000_000, 99_999_999),
            counterparty_ac=self.rng.randint(10_000_000, 99_999_999),
            payment_type="SALES_RECEIPT" if sale else "PURCHASE_PAYMENT",
        )
        self._record("payment", "insert", payment_id, at)

    # ---- updates ---------------------------------------------------------------------------

    def amend_sales_order(self, order_id: int) -> None:
        """The customer changes the quantity or the agreed price; the unpaid payment follows."""
        if self.rng.random() < 0.5:
            amend, value = AMEND_UNITS_SOLD, self.rng.randint(1001, 99973)
        else:
            amend, value = AMEND_UNIT_PRICE, Decimal(self.rng.randint(200, 400)) / 100
        with self._transaction() as at:
            self._run(amend, value=value, order_id=order_id)
            self._record("sales_order", "update", order_id, at)
            for (payment_id,) in self._run(REPRICE_UNPAID_PAYMENT, order_id=order_id):
                self._record("payment", "update", payment_id, at)

    def pay(self, payment_id: int) -> None:
        with self._transaction() as at:
            self._run(
                "UPDATE payment SET paid = true, last_updated = LOCALTIMESTAMP"
                " WHERE payment_id = CAST(:payment_id AS {payment.payment_id})",
                payment_id=payment_id,
            )
            self._record("payment", "update", payment_id, at)

    def move_legal_address(self, counterparty_id: int) -> None:
        """The counterparty moves: its legal address row is edited in place."""
        fake = self.faker[self.rng.choice(MOVE_LOCALES)]  # one country's conventions per move
        with self._transaction() as at:
            address_id = self._one(
                "UPDATE address SET address_line_1 = CAST(:line_1 AS {address.address_line_1}),"
                " address_line_2 = CAST(:line_2 AS {address.address_line_2}),"
                " district = CAST(:district AS {address.district}),"
                " city = CAST(:city AS {address.city}),"
                " postal_code = CAST(:postal_code AS {address.postal_code}),"
                " country = CAST(:country AS {address.country}),"
                " phone = CAST(:phone AS {address.phone}), last_updated = LOCALTIMESTAMP"
                " WHERE address_id = (SELECT legal_address_id FROM counterparty WHERE"
                " counterparty_id = CAST(:counterparty_id AS {counterparty.counterparty_id}))"
                " RETURNING address_id",
                line_1=fake.street_address(),
                line_2=fake.street_name() if self.rng.random() < 1 / 3 else None,
                district=fake.administrative_unit() if self.rng.random() < 0.5 else None,
                city=fake.city(),
                postal_code=fake.postcode(),
                country=fake.current_country(),
                phone=f"{self.rng.randint(1000, 9999)} {self.rng.randint(0, 999_999):06d}",
                counterparty_id=counterparty_id,
            )
            self._record("address", "update", address_id, at)

    def rename_department(self, department_id: int) -> None:
        with self._transaction() as at:
            (current,) = self._run(
                "SELECT department_name FROM department"
                " WHERE department_id = CAST(:id AS {department.department_id})",
                id=department_id,
            )[0]
            name = self.rng.choice([n for n in DEPARTMENT_NAMES if n != current])
            self._run(
                "UPDATE department SET department_name = CAST(:name AS"
                " {department.department_name}), last_updated = LOCALTIMESTAMP"
                " WHERE department_id = CAST(:id AS {department.department_id})",
                name=name,
                id=department_id,
            )
            self._record("department", "update", department_id, at)

    # ---- deletes ---------------------------------------------------------------------------

    def delete_orders(self, rows: int) -> None:
        """Delete `rows` rows: whole orders (payment, transaction, order), then the rest."""
        chains, rest = divmod(rows, 3)
        salt = self.rng.randint(0, 1 << 30)
        orders = self.conn.run(PICK_ORDERS_TO_DELETE, salt=salt, limit=chains + 1)
        for table, order_id, transaction_id, payment_id in orders[:chains]:
            with self._transaction() as at:
                self._delete("payment", payment_id, at)
                self._delete("transaction", transaction_id, at)
                self._delete(table, order_id, at)
        if rest and len(orders) > chains:
            _, _, transaction_id, payment_id = orders[chains]
            with self._transaction() as at:
                self._delete("payment", payment_id, at)
                if rest == 2:
                    self._delete("transaction", transaction_id, at)

    def _delete(self, table: str, row_id: int, at: datetime) -> None:
        self._run(DELETE_ROW[table], id=row_id)
        self._record(table, "delete", row_id, at)

    # ---- plumbing --------------------------------------------------------------------------

    def pick(self, query: str, count: int) -> list[int]:
        """Up to `count` distinct ids from one of the PICK_* queries, chosen at random."""
        if count <= 0:
            return []
        ids = [row[0] for row in self.conn.run(query, limit=CANDIDATES)]
        return sorted(self.rng.sample(ids, min(count, len(ids))))

    @contextmanager
    def _transaction(self) -> Iterator[datetime]:
        """One short transaction on UTC wall-clock time; yields its clock as timestamp(3)."""
        self.conn.run("START TRANSACTION")
        try:
            self.conn.run("SET LOCAL TIME ZONE 'UTC'")
            yield self._one("SELECT LOCALTIMESTAMP(3)")
            self.conn.run("COMMIT")
        except BaseException:
            self.conn.run("ROLLBACK")
            raise

    def _run(self, sql: str, **params: object) -> list[list[object]]:
        """Run an app statement, its `{table.column}` casts spelled with today's types."""
        return self.conn.run(sql.format_map(self.types), **params)

    def _one(self, sql: str, **params: object) -> object:
        rows = self._run(sql, **params)
        if len(rows) != 1:
            raise SimulationError(f"expected one row, got {len(rows)}: {sql[:60]}...")
        return rows[0][0]

    def _ref(self, name: str) -> int:
        return self.rng.choice(self.refs[name])

    def _record(self, table: str, action: str, row_id: object, at: datetime) -> None:
        self.result.changes.append(Change(table, action, int(row_id), at))


class _ColumnTypes(dict[str, "_TableTypes"]):
    """`{table.column}` → that column's type as the catalog spells it (`format_type`)."""

    def __init__(self, conn: pg8000.native.Connection) -> None:
        super().__init__()
        rows = conn.run(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
            " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
            " AND a.attnum > 0 AND NOT a.attisdropped"
        )
        for table, column, sql_type in rows:
            self.setdefault(table, _TableTypes())[column] = sql_type

    def __missing__(self, table: str) -> _TableTypes:
        raise SimulationError(f"totesys has no table {table!r}: run `totes seed` first")


class _TableTypes(dict[str, str]):
    def __getattr__(self, column: str) -> str:
        try:
            return self[column]
        except KeyError:
            raise SimulationError(f"totesys has no column {column!r}") from None


def _ranges(ids: list[int]) -> str:
    """[1, 2, 3, 7] → '1-3, 7'."""
    parts: list[str] = []
    start = prev = None
    for i in [*ids, None]:
        if start is not None and (i is None or i != prev + 1):
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)


# ---- the app's statements ------------------------------------------------------------------
# Whole literal statements, values bound. Dates are 'YYYY-MM-DD' text computed from the
# transaction's own clock. Rows to update are picked only among those written before the
# picking transaction: an update in the same millisecond as the insert would leave
# last_updated equal to created_at.

NEW_SALES_ORDER = """
INSERT INTO sales_order (last_updated, design_id, staff_id, counterparty_id, units_sold,
    unit_price, currency_id, agreed_delivery_date, agreed_payment_date,
    agreed_delivery_location_id)
VALUES (LOCALTIMESTAMP, CAST(:design AS {sales_order.design_id}),
    CAST(:staff AS {sales_order.staff_id}), CAST(:counterparty AS {sales_order.counterparty_id}),
    CAST(:units AS {sales_order.units_sold}), CAST(:price AS {sales_order.unit_price}),
    CAST(:currency AS {sales_order.currency_id}),
    to_char(LOCALTIMESTAMP + make_interval(days => CAST(:delivery_days AS integer)), 'YYYY-MM-DD'),
    to_char(LOCALTIMESTAMP + make_interval(days => CAST(:payment_days AS integer)), 'YYYY-MM-DD'),
    CAST(:location AS {sales_order.agreed_delivery_location_id}))
RETURNING sales_order_id
"""

NEW_PURCHASE_ORDER = """
INSERT INTO purchase_order (last_updated, staff_id, counterparty_id, item_code, item_quantity,
    item_unit_price, currency_id, agreed_delivery_date, agreed_payment_date,
    agreed_delivery_location_id)
VALUES (LOCALTIMESTAMP, CAST(:staff AS {purchase_order.staff_id}),
    CAST(:counterparty AS {purchase_order.counterparty_id}),
    CAST(:code AS {purchase_order.item_code}), CAST(:quantity AS {purchase_order.item_quantity}),
    CAST(:price AS {purchase_order.item_unit_price}),
    CAST(:currency AS {purchase_order.currency_id}),
    to_char(LOCALTIMESTAMP + make_interval(days => CAST(:delivery_days AS integer)), 'YYYY-MM-DD'),
    to_char(LOCALTIMESTAMP + make_interval(days => CAST(:payment_days AS integer)), 'YYYY-MM-DD'),
    CAST(:location AS {purchase_order.agreed_delivery_location_id}))
RETURNING purchase_order_id
"""

NEW_TRANSACTION = """
INSERT INTO "transaction" (transaction_type, sales_order_id, purchase_order_id, last_updated)
VALUES (CAST(:kind AS {transaction.transaction_type}),
    CAST(:sales_order_id AS {transaction.sales_order_id}),
    CAST(:purchase_order_id AS {transaction.purchase_order_id}), LOCALTIMESTAMP)
RETURNING transaction_id
"""

# The payment copies its order's counterparty, currency, amount (quantity x unit price) and
# agreed payment date; a counterparty keeps the bank account seen on its earlier payments.
NEW_PAYMENT = """
INSERT INTO payment (last_updated, transaction_id, counterparty_id, payment_amount, currency_id,
    payment_type_id, paid, payment_date, company_ac_number, counterparty_ac_number)
SELECT LOCALTIMESTAMP, t.transaction_id,
    COALESCE(so.counterparty_id, po.counterparty_id),
    COALESCE(so.units_sold * so.unit_price, po.item_quantity * po.item_unit_price),
    COALESCE(so.currency_id, po.currency_id),
    pt.payment_type_id, false,
    COALESCE(so.agreed_payment_date, po.agreed_payment_date),
    CAST(:company_ac AS {payment.company_ac_number}),
    COALESCE((SELECT p.counterparty_ac_number FROM payment p
              WHERE p.counterparty_id = COALESCE(so.counterparty_id, po.counterparty_id)
              LIMIT 1), CAST(:counterparty_ac AS {payment.counterparty_ac_number}))
FROM "transaction" t
LEFT JOIN sales_order so ON so.sales_order_id = t.sales_order_id
LEFT JOIN purchase_order po ON po.purchase_order_id = t.purchase_order_id
JOIN payment_type pt ON pt.payment_type_name = CAST(:payment_type AS
    {payment_type.payment_type_name})
WHERE t.transaction_id = CAST(:transaction_id AS {transaction.transaction_id})
RETURNING payment_id
"""

AMEND_UNITS_SOLD = """
UPDATE sales_order SET units_sold = CAST(:value AS {sales_order.units_sold}),
    last_updated = LOCALTIMESTAMP
WHERE sales_order_id = CAST(:order_id AS {sales_order.sales_order_id})
"""

AMEND_UNIT_PRICE = """
UPDATE sales_order SET unit_price = CAST(:value AS {sales_order.unit_price}),
    last_updated = LOCALTIMESTAMP
WHERE sales_order_id = CAST(:order_id AS {sales_order.sales_order_id})
"""

REPRICE_UNPAID_PAYMENT = """
UPDATE payment p SET payment_amount = so.units_sold * so.unit_price,
    last_updated = LOCALTIMESTAMP
FROM "transaction" t, sales_order so
WHERE p.transaction_id = t.transaction_id
    AND t.sales_order_id = CAST(:order_id AS {sales_order.sales_order_id})
    AND so.sales_order_id = CAST(:order_id AS {sales_order.sales_order_id}) AND NOT p.paid
RETURNING p.payment_id
"""

PICK_UNPAID_SALES_ORDERS = """
SELECT so.sales_order_id FROM sales_order so
JOIN "transaction" t ON t.sales_order_id = so.sales_order_id
JOIN payment p ON p.transaction_id = t.transaction_id
WHERE NOT p.paid AND so.created_at < LOCALTIMESTAMP(3)
ORDER BY so.sales_order_id DESC LIMIT :limit
"""

PICK_UNPAID_PAYMENTS = """
SELECT payment_id FROM payment WHERE NOT paid AND created_at < LOCALTIMESTAMP(3)
ORDER BY payment_id DESC LIMIT :limit
"""

PICK_COUNTERPARTIES = """
SELECT c.counterparty_id FROM counterparty c JOIN address a ON a.address_id = c.legal_address_id
WHERE a.created_at < LOCALTIMESTAMP(3) ORDER BY 1 LIMIT :limit
"""

# Orders with their transaction and payment, in a pseudo-random order over the whole table
# (a salted hash of the id: deterministic for a seed).
DELETE_ROW = {
    "payment": "DELETE FROM payment WHERE payment_id = CAST(:id AS {payment.payment_id})",
    "transaction": 'DELETE FROM "transaction"'
    " WHERE transaction_id = CAST(:id AS {transaction.transaction_id})",
    "sales_order": "DELETE FROM sales_order"
    " WHERE sales_order_id = CAST(:id AS {sales_order.sales_order_id})",
    "purchase_order": "DELETE FROM purchase_order"
    " WHERE purchase_order_id = CAST(:id AS {purchase_order.purchase_order_id})",
}

PICK_ORDERS_TO_DELETE = """
SELECT o.kind, o.order_id, o.transaction_id, o.payment_id FROM (
    SELECT CASE WHEN t.sales_order_id IS NOT NULL THEN 'sales_order' ELSE 'purchase_order' END
               AS kind,
           COALESCE(t.sales_order_id, t.purchase_order_id) AS order_id, t.transaction_id,
           p.payment_id
    FROM "transaction" t JOIN payment p ON p.transaction_id = t.transaction_id
    WHERE COALESCE(t.sales_order_id, t.purchase_order_id) IS NOT NULL
) AS o
ORDER BY hashint8(CAST(o.transaction_id AS bigint) + CAST(:salt AS bigint)), o.transaction_id
LIMIT :limit
"""

PICK_DEPARTMENTS = """
SELECT department_id FROM department WHERE created_at < LOCALTIMESTAMP(3) ORDER BY 1 LIMIT :limit
"""
