"""The business invariants of totesys, as queries: each counts the rows that break it.

The seeder and the simulator must keep all of them; other parts' tests can call
`violations(conn)` to check a totesys they have written to.
"""

from __future__ import annotations

import pg8000.native

INVARIANTS: dict[str, str] = {
    "every sales order has a transaction": """
        SELECT count(*) FROM sales_order so
        WHERE NOT EXISTS (SELECT 1 FROM "transaction" t WHERE t.sales_order_id = so.sales_order_id)
    """,
    "every purchase order has a transaction": """
        SELECT count(*) FROM purchase_order po WHERE NOT EXISTS
            (SELECT 1 FROM "transaction" t WHERE t.purchase_order_id = po.purchase_order_id)
    """,
    "a transaction's type matches its one order": """
        SELECT count(*) FROM "transaction" WHERE NOT (
            (transaction_type = 'SALE' AND sales_order_id IS NOT NULL
                AND purchase_order_id IS NULL)
            OR (transaction_type = 'PURCHASE' AND purchase_order_id IS NOT NULL
                AND sales_order_id IS NULL))
    """,
    "every transaction has a payment": """
        SELECT count(*) FROM "transaction" t
        WHERE NOT EXISTS (SELECT 1 FROM payment p WHERE p.transaction_id = t.transaction_id)
    """,
    "a payment's type matches its transaction's type": """
        SELECT count(*) FROM payment p
        JOIN "transaction" t ON t.transaction_id = p.transaction_id
        JOIN payment_type pt ON pt.payment_type_id = p.payment_type_id
        WHERE (t.transaction_type = 'SALE')
            <> (pt.payment_type_name IN ('SALES_RECEIPT', 'SALES_REFUND'))
    """,
    "a payment copies its order's counterparty, currency, amount and date": """
        SELECT count(*) FROM payment p
        JOIN "transaction" t ON t.transaction_id = p.transaction_id
        LEFT JOIN sales_order so ON so.sales_order_id = t.sales_order_id
        LEFT JOIN purchase_order po ON po.purchase_order_id = t.purchase_order_id
        WHERE p.counterparty_id <> COALESCE(so.counterparty_id, po.counterparty_id)
            OR p.currency_id <> COALESCE(so.currency_id, po.currency_id)
            OR p.payment_amount
                <> COALESCE(so.units_sold * so.unit_price, po.item_quantity * po.item_unit_price)
            OR p.payment_date <> COALESCE(so.agreed_payment_date, po.agreed_payment_date)
    """,
    "agreed and payment dates are YYYY-MM-DD text": """
        SELECT (SELECT count(*) FROM sales_order
                WHERE agreed_delivery_date !~ '^\\d{4}-\\d{2}-\\d{2}$'
                    OR agreed_payment_date !~ '^\\d{4}-\\d{2}-\\d{2}$')
             + (SELECT count(*) FROM purchase_order
                WHERE agreed_delivery_date !~ '^\\d{4}-\\d{2}-\\d{2}$'
                    OR agreed_payment_date !~ '^\\d{4}-\\d{2}-\\d{2}$')
             + (SELECT count(*) FROM payment WHERE payment_date !~ '^\\d{4}-\\d{2}-\\d{2}$')
    """,
    "last_updated is never before created_at": """
        SELECT (SELECT count(*) FROM address WHERE last_updated < created_at)
             + (SELECT count(*) FROM counterparty WHERE last_updated < created_at)
             + (SELECT count(*) FROM currency WHERE last_updated < created_at)
             + (SELECT count(*) FROM department WHERE last_updated < created_at)
             + (SELECT count(*) FROM design WHERE last_updated < created_at)
             + (SELECT count(*) FROM payment_type WHERE last_updated < created_at)
             + (SELECT count(*) FROM staff WHERE last_updated < created_at)
             + (SELECT count(*) FROM sales_order WHERE last_updated < created_at)
             + (SELECT count(*) FROM purchase_order WHERE last_updated < created_at)
             + (SELECT count(*) FROM "transaction" WHERE last_updated < created_at)
             + (SELECT count(*) FROM payment WHERE last_updated < created_at)
    """,
}


def violations(conn: pg8000.native.Connection) -> dict[str, int]:
    """{invariant: rows breaking it} for every invariant that does not hold (empty when all do)."""
    found = {}
    for name, sql in INVARIANTS.items():
        (count,) = conn.run(sql)[0]
        if count:
            found[name] = count
    return found
