"""Vectorised generation of the totesys tables for a scale, a seed and an end date.

Columns are built whole with numpy (no Python loop per row), so scale 100 (about 1.1 million
sales orders and 1.6 million transactions and payments) takes seconds. Each table draws from its
own random stream (`[seed, k]`), so the same seed, scale and end always give the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from infra.local.totesys import reference
from infra.local.totesys.shapes import MONEY, SCHEMAS

# Volumes of the real database in late 2024, which scale 1 stands for.
SALES_ORDERS_AT_SCALE_1 = 11_187
PURCHASE_ORDERS_AT_SCALE_1 = 4_650
# Orders started the moment after the reference data was written on the first day.
FIRST_ORDER_AT = datetime(2022, 11, 3, 14, 20, 52, 186000)
# The design catalogue grows by itself, whatever the order volume (about 470 by late 2024).
INITIAL_DESIGNS = 10
DESIGNS_PER_DAY = 0.63
MEAN_BURST = 4  # orders arrive in small bursts, a few rows at a time
BURST_SPREAD_MS = 3_000
ZERO_MS_SHARE = 0.01  # some timestamps end in .000: the case isoformat() mangles
REFUND_SHARE = 0.05
DESIGN_NAMES = (
    "Wooden", "Steel", "Granite", "Cotton", "Bronze", "Plastic", "Rubber", "Frozen", "Soft",
    "Fresh", "Concrete", "Metal", "Fantastic", "Practical", "Rustic", "Tasty", "Awesome",
    "Incredible", "Handcrafted", "Generic", "Refined", "Sleek", "Gorgeous", "Licensed",
)  # fmt: skip
FILE_LOCATIONS = (
    "/usr", "/private", "/System", "/opt", "/Users", "/etc", "/var", "/home/user/dir",
    "/usr/local/src", "/Library", "/root", "/lost+found", "/opt/share", "/srv", "/bin",
)  # fmt: skip
ITEM_CODE_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)


def generate(scale: float, seed: int, end: date) -> Iterator[tuple[str, pa.Table]]:
    """Yield (table name, Arrow table) in load order; later tables reuse earlier ones' columns."""
    start_ms = _ms(FIRST_ORDER_AT)
    end_ms = _ms(datetime(end.year, end.month, end.day))
    if end_ms <= start_ms:
        raise ValueError(f"end date {end} is before the first totesys order ({FIRST_ORDER_AT})")
    yield from reference.reference_tables(seed).items()

    design = _designs(np.random.default_rng([seed, 2]), start_ms, end_ms)
    yield "design", design
    design_created = design.column("created_at").to_numpy().astype("datetime64[ms]")

    sales = _sales_orders(
        np.random.default_rng([seed, 3]),
        round(SALES_ORDERS_AT_SCALE_1 * scale),
        start_ms,
        end_ms,
        design_created,
    )
    yield "sales_order", sales
    purchases = _purchase_orders(
        np.random.default_rng([seed, 4]),
        round(PURCHASE_ORDERS_AT_SCALE_1 * scale),
        start_ms,
        end_ms,
    )
    yield "purchase_order", purchases
    transactions, payments = _transactions_and_payments(
        np.random.default_rng([seed, 5]), sales, purchases, end
    )
    yield "transaction", transactions
    yield "payment", payments


def _designs(rng: np.random.Generator, start_ms: int, end_ms: int) -> pa.Table:
    days = (end_ms - start_ms) / 86_400_000
    n = INITIAL_DESIGNS + round(days * DESIGNS_PER_DAY)
    created = np.empty(n, dtype=np.int64)
    created[:INITIAL_DESIGNS] = _ms(reference.REFERENCE_CREATED_AT)
    created[INITIAL_DESIGNS:] = rng.integers(start_ms, end_ms, n - INITIAL_DESIGNS)
    created = np.sort(_some_whole_seconds(rng, created))
    names = np.array(DESIGN_NAMES)[rng.integers(0, len(DESIGN_NAMES), n)]
    days = created.astype("datetime64[ms]").astype("datetime64[D]")
    stamp = np.char.replace(np.datetime_as_string(days), "-", "")
    suffix = _random_strings(rng, n, 4, np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8))
    file_names = np.char.add(
        np.char.add(np.char.add(np.char.lower(names), "-"), np.char.add(stamp, "-")),
        np.char.add(suffix.astype(str), ".json"),
    )
    ts = created.astype("datetime64[ms]")
    return _table(
        "design",
        design_id=np.arange(1, n + 1, dtype=np.int32),
        created_at=ts,
        design_name=names,
        file_location=np.array(FILE_LOCATIONS)[rng.integers(0, len(FILE_LOCATIONS), n)],
        file_name=file_names,
        last_updated=ts,
    )


def _sales_orders(
    rng: np.random.Generator, n: int, start_ms: int, end_ms: int, design_created: np.ndarray
) -> pa.Table:
    created = _burst_times(rng, n, start_ms, end_ms)
    # An order can only use a design that existed when it was placed.
    available = np.searchsorted(design_created, created, side="right")
    design_id = (rng.random(n) * available).astype(np.int32) + 1
    day = created.astype("datetime64[D]")
    return _table(
        "sales_order",
        sales_order_id=np.arange(1, n + 1, dtype=np.int32),
        created_at=created,
        last_updated=created,
        design_id=design_id,
        staff_id=_ids(rng, reference.STAFF_COUNT, n),
        counterparty_id=_ids(rng, reference.COUNTERPARTY_COUNT, n),
        units_sold=rng.integers(1001, 99974, n, dtype=np.int32),
        unit_price=_money(rng.integers(200, 401, n)),
        currency_id=_ids(rng, len(reference.CURRENCY_CODES), n),
        agreed_delivery_date=_iso_dates(day + rng.integers(2, 8, n)),
        agreed_payment_date=_iso_dates(day + rng.integers(1, 8, n)),
        agreed_delivery_location_id=_ids(rng, reference.ADDRESS_COUNT, n),
    )


def _purchase_orders(rng: np.random.Generator, n: int, start_ms: int, end_ms: int) -> pa.Table:
    created = _burst_times(rng, n, start_ms, end_ms)
    day = created.astype("datetime64[D]")
    return _table(
        "purchase_order",
        purchase_order_id=np.arange(1, n + 1, dtype=np.int32),
        created_at=created,
        last_updated=created,
        staff_id=_ids(rng, reference.STAFF_COUNT, n),
        counterparty_id=_ids(rng, reference.COUNTERPARTY_COUNT, n),
        item_code=pa.array(_random_strings(rng, n, 7, ITEM_CODE_ALPHABET)).cast(pa.string()),
        item_quantity=rng.integers(1, 1000, n, dtype=np.int32),
        item_unit_price=_money(rng.integers(332, 99908, n)),
        currency_id=_ids(rng, len(reference.CURRENCY_CODES), n),
        agreed_delivery_date=_iso_dates(day + rng.integers(2, 8, n)),
        agreed_payment_date=_iso_dates(day + rng.integers(1, 8, n)),
        agreed_delivery_location_id=_ids(rng, reference.ADDRESS_COUNT, n),
    )


def _transactions_and_payments(
    rng: np.random.Generator, sales: pa.Table, purchases: pa.Table, end: date
) -> tuple[pa.Table, pa.Table]:
    """One transaction per order and one payment per transaction, numbered in time order."""
    n_sales, n_purchases = sales.num_rows, purchases.num_rows
    is_purchase = np.concatenate([np.zeros(n_sales, bool), np.ones(n_purchases, bool)])
    order_id = np.concatenate(
        [np.arange(1, n_sales + 1, dtype=np.int32), np.arange(1, n_purchases + 1, dtype=np.int32)]
    )

    def both(sales_column: str, purchase_column: str | None = None) -> np.ndarray:
        return np.concatenate(
            [
                _np(sales.column(sales_column)),
                _np(purchases.column(purchase_column or sales_column)),
            ]
        )

    created = both("created_at").astype("datetime64[ms]")
    order = np.argsort(created, kind="stable")
    is_purchase, order_id, created = is_purchase[order], order_id[order], created[order]
    n = n_sales + n_purchases
    ids = np.arange(1, n + 1, dtype=np.int32)

    transactions = _table(
        "transaction",
        transaction_id=ids,
        transaction_type=pa.DictionaryArray.from_arrays(
            pa.array(is_purchase.astype(np.int8)), pa.array(["SALE", "PURCHASE"])
        ).cast(pa.string()),
        sales_order_id=pa.array(order_id, mask=is_purchase),
        purchase_order_id=pa.array(order_id, mask=~is_purchase),
        created_at=created,
        last_updated=created,
    )

    # Money in cents keeps amount = quantity x unit price exact.
    amount_cents = np.concatenate(
        [
            _np(sales.column("units_sold")).astype(np.int64) * _cents(sales.column("unit_price")),
            _np(purchases.column("item_quantity")).astype(np.int64)
            * _cents(purchases.column("item_unit_price")),
        ]
    )[order]
    counterparty = both("counterparty_id")[order]
    payment_date = pa.concat_arrays(
        [
            sales.column("agreed_payment_date").combine_chunks(),
            purchases.column("agreed_payment_date").combine_chunks(),
        ]
    ).take(pa.array(order))
    refund = rng.random(n) < REFUND_SHARE
    # PaymentTypeName ids: 1 SALES_RECEIPT, 2 SALES_REFUND, 3 PURCHASE_PAYMENT, 4 PURCHASE_REFUND.
    payment_type_id = (1 + 2 * is_purchase + refund).astype(np.int32)
    # Due dates in the past are mostly settled; nothing is paid before it is due.
    # 'YYYY-MM-DD' text sorts like the date it holds.
    due = pc.less(payment_date, end.isoformat()).to_numpy(zero_copy_only=False)
    paid = due & (rng.random(n) < 0.8)
    counterparty_accounts = rng.integers(
        10_000_000, 100_000_000, reference.COUNTERPARTY_COUNT + 1, dtype=np.int32
    )
    payments = _table(
        "payment",
        payment_id=ids,
        created_at=created,
        last_updated=created,
        transaction_id=ids,
        counterparty_id=counterparty,
        payment_amount=_money(amount_cents),
        currency_id=both("currency_id")[order],
        payment_type_id=payment_type_id,
        paid=paid,
        payment_date=payment_date,
        company_ac_number=rng.integers(10_000_000, 100_000_000, n, dtype=np.int32),
        counterparty_ac_number=counterparty_accounts[counterparty],
    )
    return transactions, payments


# ---- helpers ---------------------------------------------------------------------------------


def _table(name: str, **columns: object) -> pa.Table:
    schema = SCHEMAS[name]
    arrays = [_arrow(columns[field.name], field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _arrow(values: object, kind: pa.DataType) -> pa.Array:
    if isinstance(values, pa.Array):
        return values if values.type == kind else values.cast(kind)
    return pa.array(values, type=kind)


def _np(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy()


def _ms(moment: datetime) -> int:
    return int(np.datetime64(moment, "ms").astype(np.int64))


def _ids(rng: np.random.Generator, count: int, n: int) -> np.ndarray:
    return rng.integers(1, count + 1, n, dtype=np.int32)


def _burst_times(rng: np.random.Generator, n: int, start_ms: int, end_ms: int) -> np.ndarray:
    """n sorted millisecond timestamps in [start, end), clustered in bursts of a few rows."""
    bursts = max(1, n // MEAN_BURST)
    burst_at = rng.integers(start_ms, end_ms, bursts)
    moments = burst_at[rng.integers(0, bursts, n)] + rng.integers(0, BURST_SPREAD_MS, n)
    moments = np.minimum(_some_whole_seconds(rng, moments), end_ms - 1)
    return np.sort(moments).astype("datetime64[ms]")


def _some_whole_seconds(rng: np.random.Generator, moments_ms: np.ndarray) -> np.ndarray:
    whole = rng.random(moments_ms.size) < ZERO_MS_SHARE
    return np.where(whole, moments_ms - moments_ms % 1000, moments_ms)


def _iso_dates(days: np.ndarray) -> pa.Array:
    """'YYYY-MM-DD' text, formatted by Arrow (20x faster than numpy's datetime_as_string)."""
    return pa.array(days.astype("datetime64[D]")).cast(pa.string())


def _random_strings(
    rng: np.random.Generator, n: int, length: int, alphabet: np.ndarray
) -> np.ndarray:
    """n random fixed-length ASCII strings as a numpy bytes array (dtype S<length>)."""
    codes = alphabet[rng.integers(0, alphabet.size, (n, length))]
    return np.ascontiguousarray(codes).view(f"S{length}").ravel()


def _money(cents: np.ndarray) -> pa.Array:
    """numeric(10,2) from integer cents, exactly: decimal128 is a 128-bit little-endian integer
    of the unscaled value, so its buffer is (low 64 bits, sign extension) per value."""
    words = np.empty((cents.size, 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63
    return pa.Array.from_buffers(MONEY, cents.size, [None, pa.py_buffer(words)])


def _cents(column: pa.ChunkedArray) -> np.ndarray:
    """Integer cents of a non-negative decimal128(10,2) column (the low 64 bits of each value)."""
    chunks = [
        np.frombuffer(chunk.buffers()[1], dtype=np.int64).reshape(-1, 2)[
            chunk.offset : chunk.offset + len(chunk), 0
        ]
        for chunk in column.chunks
    ]
    return np.concatenate(chunks) if chunks else np.empty(0, np.int64)
