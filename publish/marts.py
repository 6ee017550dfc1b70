"""The mart tables the warehouse builds and the lake copy holds: one list for every reader.

Facts are append-only, one row per source row version, keyed by a surrogate that only grows;
dimensions hold one row per member. The `fact_*_current` views over the facts are not listed:
they are derived in the warehouse and never published. `tests/publish/test_marts.py` checks this
list against the dbt project's mart models, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

SCHEMA = "marts"

FACTS: Mapping[str, str] = {  # fact → surrogate key
    "fact_sales_order": "sales_record_id",
    "fact_purchase_order": "purchase_record_id",
    "fact_payment": "payment_record_id",
}
DIMENSIONS: Mapping[str, str] = {  # dimension → member key
    "dim_date": "date_id",
    "dim_staff": "staff_id",
    "dim_location": "location_id",
    "dim_currency": "currency_id",
    "dim_design": "design_id",
    "dim_counterparty": "counterparty_id",
    "dim_payment_type": "payment_type_id",
    "dim_transaction": "transaction_id",
}
TABLES: tuple[str, ...] = (*DIMENSIONS, *FACTS)  # dimensions first: the order they publish in
