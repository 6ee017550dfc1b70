"""Arrow schemas of the totesys tables, columns in database order: what the seeder generates
and COPYs. The database's own types live in schema_pre.sql; tests check both against
docs/SOURCE.md."""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("ms")  # timestamp(3): millisecond precision, no zone (UTC wall clock)
MONEY = pa.decimal128(10, 2)


def _schema(*fields: tuple[str, pa.DataType, bool]) -> pa.Schema:
    return pa.schema([pa.field(name, kind, nullable) for name, kind, nullable in fields])


SCHEMAS: dict[str, pa.Schema] = {
    "address": _schema(
        ("address_id", pa.int32(), False),
        ("address_line_1", pa.string(), False),
        ("address_line_2", pa.string(), True),
        ("district", pa.string(), True),
        ("city", pa.string(), False),
        ("postal_code", pa.string(), False),
        ("country", pa.string(), False),
        ("phone", pa.string(), False),
        ("created_at", TS, False),
        ("last_updated", TS, False),
    ),
    "counterparty": _schema(
        ("counterparty_id", pa.int32(), False),
        ("counterparty_legal_name", pa.string(), False),
        ("legal_address_id", pa.int32(), False),
        ("commercial_contact", pa.string(), True),
        ("delivery_contact", pa.string(), True),
        ("created_at", TS, False),
        ("last_updated", TS, False),
    ),
    "currency": _schema(
        ("currency_id", pa.int32(), False),
        ("currency_code", pa.string(), False),
        ("created_at", TS, False),
        ("last_updated", TS, False),
    ),
    "department": _schema(
        ("department_id", pa.int32(), False),
        ("department_name", pa.string(), False),
        ("location", pa.string(), True),
        ("manager", pa.string(), True),
        ("created_at", TS, False),
        ("last_updated", TS, False),
    ),
    "design": _schema(
        ("design_id", pa.int32(), False),
        ("created_at", TS, False),
        ("design_name", pa.string(), False),
        ("file_location", pa.string(), False),
        ("file_name", pa.string(), False),
        ("last_updated", TS, False),
    ),
    "payment_type": _schema(
        ("payment_type_id", pa.int32(), False),
        ("payment_type_name", pa.string(), False),
        ("created_at", TS, False),
        ("last_updated", TS, False),
    ),
    "staff": _schema(
        ("staff_id", pa.int32(), False),
        ("first_name", pa.string(), False),
        ("last_name", pa.string(), False),
        ("department_id", pa.int32(), False),
        ("email_address", pa.string(), False),
        ("created_at", TS, False),
        ("last_updated", TS, False),
    ),
    "sales_order": _schema(
        ("sales_order_id", pa.int32(), False),
        ("created_at", TS, False),
        ("last_updated", TS, False),
        ("design_id", pa.int32(), False),
        ("staff_id", pa.int32(), False),
        ("counterparty_id", pa.int32(), False),
        ("units_sold", pa.int32(), False),
        ("unit_price", MONEY, False),
        ("currency_id", pa.int32(), False),
        ("agreed_delivery_date", pa.string(), False),
        ("agreed_payment_date", pa.string(), False),
        ("agreed_delivery_location_id", pa.int32(), False),
    ),
    "purchase_order": _schema(
        ("purchase_order_id", pa.int32(), False),
        ("created_at", TS, False),
        ("last_updated", TS, False),
        ("staff_id", pa.int32(), False),
        ("counterparty_id", pa.int32(), False),
        ("item_code", pa.string(), False),
        ("item_quantity", pa.int32(), False),
        ("item_unit_price", MONEY, False),
        ("currency_id", pa.int32(), False),
        ("agreed_delivery_date", pa.string(), False),
        ("agreed_payment_date", pa.string(), False),
        ("agreed_delivery_location_id", pa.int32(), False),
    ),
    "transaction": _schema(
        ("transaction_id", pa.int32(), False),
        ("transaction_type", pa.string(), False),
        ("sales_order_id", pa.int32(), True),
        ("purchase_order_id", pa.int32(), True),
        ("created_at", TS, False),
        ("last_updated", TS, False),
    ),
    "payment": _schema(
        ("payment_id", pa.int32(), False),
        ("created_at", TS, False),
        ("last_updated", TS, False),
        ("transaction_id", pa.int32(), False),
        ("counterparty_id", pa.int32(), False),
        ("payment_amount", MONEY, False),
        ("currency_id", pa.int32(), False),
        ("payment_type_id", pa.int32(), False),
        ("paid", pa.bool_(), False),
        ("payment_date", pa.string(), False),
        ("company_ac_number", pa.int32(), False),
        ("counterparty_ac_number", pa.int32(), False),
    ),
}
