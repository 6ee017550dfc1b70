"""The small, static totesys tables (currency, payment_type, department, staff, address,
counterparty): a few dozen rows built with a seeded Faker, as Arrow tables."""

from __future__ import annotations

import unicodedata
from datetime import datetime

import numpy as np
import pyarrow as pa
from faker import Faker

from infra.local.totesys.shapes import SCHEMAS

# Every reference row in the real database was written in one go on the system's first day.
REFERENCE_CREATED_AT = datetime(2022, 11, 3, 14, 20, 49, 962000)

CURRENCY_CODES = ("GBP", "USD", "EUR")
PAYMENT_TYPES = ("SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND")
DEPARTMENTS = (
    "Sales",
    "Purchasing",
    "Production",
    "Dispatch",
    "Finance",
    "Facilities",
    "Communications",
    "HR",
)
LOCATIONS = ("Manchester", "Leeds")
STAFF_COUNT = 20
ADDRESS_COUNT = 30
COUNTERPARTY_COUNT = 20
# Real people's names are not ASCII-clean: these must survive every hop of the pipeline.
AWKWARD_STAFF = (("Zoë", "Wright"), ("Liam", "O'Connor"), ("Siobhán", "Ní Bhriain"))
COUNTIES = (
    "Avon",
    "Bedfordshire",
    "Berkshire",
    "Buckinghamshire",
    "Cambridgeshire",
    "Cheshire",
    "Cornwall",
    "Cumbria",
    "Derbyshire",
    "Devon",
    "Dorset",
    "East Sussex",
    "Essex",
    "Gloucestershire",
    "Kent",
    "Lancashire",
    "North Yorkshire",
    "Surrey",
)


def reference_tables(seed: int) -> dict[str, pa.Table]:
    """The six reference tables, deterministic for a seed, in load order."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = np.random.default_rng([seed, 1])
    return {
        "address": _table("address", _addresses(fake, rng)),
        "counterparty": _table("counterparty", _counterparties(fake, rng)),
        "currency": _table(
            "currency",
            [{"currency_id": i, "currency_code": c} for i, c in enumerate(CURRENCY_CODES, 1)],
        ),
        "department": _table("department", _departments(fake, rng)),
        "payment_type": _table(
            "payment_type",
            [
                {"payment_type_id": i, "payment_type_name": name}
                for i, name in enumerate(PAYMENT_TYPES, 1)
            ],
        ),
        "staff": _table("staff", _staff(fake, rng)),
    }


def _table(name: str, rows: list[dict[str, object]]) -> pa.Table:
    # Column by column, timestamps from numpy: pyarrow imports pandas (a second or more) to
    # convert Python datetimes.
    stamp = np.full(len(rows), np.datetime64(REFERENCE_CREATED_AT, "ms"))
    schema = SCHEMAS[name]
    columns = [
        pa.array(
            stamp if f.name in ("created_at", "last_updated") else [r[f.name] for r in rows], f.type
        )
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _addresses(fake: Faker, rng: np.random.Generator) -> list[dict[str, object]]:
    rows = []
    for address_id in range(1, ADDRESS_COUNT + 1):
        rows.append(
            {
                "address_id": address_id,
                "address_line_1": fake.street_address(),
                # In the real data about two thirds have no second line and half no district.
                "address_line_2": fake.street_name() if rng.random() < 1 / 3 else None,
                "district": str(rng.choice(COUNTIES)) if rng.random() < 0.5 else None,
                "city": fake.city(),
                "postal_code": fake.postcode(),
                "country": fake.country(),
                "phone": f"{rng.integers(1000, 10000)} {rng.integers(0, 1_000_000):06d}",
            }
        )
    return rows


def _counterparties(fake: Faker, rng: np.random.Generator) -> list[dict[str, object]]:
    legal_addresses = rng.choice(np.arange(1, ADDRESS_COUNT + 1), COUNTERPARTY_COUNT, replace=False)
    return [
        {
            "counterparty_id": i,
            "counterparty_legal_name": fake.unique.company(),
            "legal_address_id": int(legal_addresses[i - 1]),
            "commercial_contact": fake.name() if rng.random() < 0.9 else None,
            "delivery_contact": fake.name() if rng.random() < 0.9 else None,
        }
        for i in range(1, COUNTERPARTY_COUNT + 1)
    ]


def _departments(fake: Faker, rng: np.random.Generator) -> list[dict[str, object]]:
    return [
        {
            "department_id": i,
            "department_name": name,
            "location": str(rng.choice(LOCATIONS)),
            "manager": fake.name(),
        }
        for i, name in enumerate(DEPARTMENTS, 1)
    ]


def _staff(fake: Faker, rng: np.random.Generator) -> list[dict[str, object]]:
    names = list(AWKWARD_STAFF)
    while len(names) < STAFF_COUNT:
        name = (fake.first_name(), fake.last_name())
        if name not in names:
            names.append(name)
    order = rng.permutation(STAFF_COUNT)
    return [
        {
            "staff_id": i,
            "first_name": first,
            "last_name": last,
            "department_id": int(rng.integers(1, len(DEPARTMENTS) + 1)),
            "email_address": f"{_email_part(first)}.{_email_part(last)}@terrifictotes.com",
        }
        for i, (first, last) in enumerate((names[k] for k in order), 1)
    ]


def _email_part(name: str) -> str:
    """'Zoë' → 'zoe', "O'Connor" → 'oconnor', 'Ní Bhriain' → 'nibhriain'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_name.lower() if ch.isalnum())
