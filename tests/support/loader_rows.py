"""Awkward but valid sales_order rows for the loader's tests: every edge a value can take."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from support.loader_lake import SALES_ORDER, TablePart, arrow_table

TEXTS = [
    "",
    None,
    "plain",
    "ünïcödé 😀 中文 ßø",
    'quote " and ""double""',
    "comma, here",
    "new\nline\r\nand CRLF",
    "back\\slash \\N",
    "\\.",
    "  spaces  ",
    "NULL",
    "'single'",
    "tab\there",
]
N = len(TEXTS)
EDGE = [
    ("id", "integer", pa.int32(), False),
    ("name", "text", pa.string(), True),
    ("small", "smallint", pa.int16(), True),
    ("big", "bigint", pa.int64(), True),
    ("money", "numeric(10,2)", pa.decimal128(10, 2), True),
    ("stamp", "timestamp(3) without time zone", pa.timestamp("ms"), True),
    ("flag", "boolean", pa.bool_(), True),
    ("day", "date", pa.date32(), True),
    ("kind", '"PaymentTypeName"', pa.string(), True),
    ("code", "character varying(3)", pa.string(), True),
]
STAMPS = [
    dt.datetime(2024, 1, 1, 0, 0, 0),
    dt.datetime(2024, 1, 1, 0, 0, 0, 1000),
    dt.datetime(2024, 1, 1, 23, 59, 59, 999000),
    dt.datetime(1970, 1, 1),
    dt.datetime(1, 1, 1),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999000),
    dt.datetime(2000, 2, 29, 12, 0, 0, 500000),
    None,
]
MONEY = ["99999999.99", "-99999999.99", "0.00", "0.01", "-0.01", None, "12.30"]


def _cycle(values: list, n: int = N) -> list:
    return [values[i % len(values)] for i in range(n)]


def edge_rows() -> dict[str, list]:
    return {
        "id": list(range(1, N + 1)),
        "name": TEXTS,
        "small": _cycle([-32768, 32767, 0, None]),
        "big": _cycle([-(2**63), 2**63 - 1, 0, None]),
        "money": [Decimal(m) if m else None for m in _cycle(MONEY)],
        "stamp": _cycle(STAMPS),
        "flag": _cycle([True, False, None]),
        "day": _cycle([dt.date(2024, 2, 29), dt.date(1, 1, 1), dt.date(9999, 12, 31), None]),
        "kind": _cycle(["SALES_RECEIPT", "PURCHASE_REFUND", None]),
        "code": _cycle(["GBP", "", None, "EU"]),
    }


def sales_orders(first_id: int, count: int, *, updated: dt.datetime | None = None) -> pa.Table:
    base = updated or dt.datetime(2024, 11, 3, 14, 20, 52, 186000)
    ids = list(range(first_id, first_id + count))
    return arrow_table(
        SALES_ORDER,
        {
            "sales_order_id": ids,
            "created_at": [base] * count,
            "last_updated": [base + dt.timedelta(milliseconds=i) for i in range(count)],
            "design_id": [i % 470 + 1 for i in ids],
            "staff_id": [i % 20 + 1 for i in ids],
            "counterparty_id": [i % 20 + 1 for i in ids],
            "units_sold": [1001 + i % 98972 for i in ids],
            "unit_price": [Decimal(f"{2 + i % 200 / 100:.2f}") for i in ids],
            "currency_id": [i % 3 + 1 for i in ids],
            "agreed_delivery_date": ["2024-11-10"] * count,
            "agreed_payment_date": ["2024-11-12"] * count,
            "agreed_delivery_location_id": [i % 30 + 1 for i in ids],
        },
    )


def sales_part(first_id: int, count: int, parts: int = 1) -> TablePart:
    size = -(-count // parts)
    return TablePart(
        "sales_order",
        SALES_ORDER,
        [sales_orders(first_id + i * size, min(size, count - i * size)) for i in range(parts)],
    )
