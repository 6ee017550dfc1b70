"""The mart tables the warehouse builds and the lake copy holds: one list for every reader.

Facts are append-only, one row per source row version, keyed by a surrogate that only grows;
dimensions hold one row per member; `deletions` is append-only like a fact, one row per source
row deleted, keyed by its deletion id, so lake readers can tell which versions and members the
source no longer holds. The views over them (`fact_*_current`, `fact_*_history`,
`deleted_members`) are not listed: they are derived in the warehouse and never published.
`tests/publish/test_marts.py` checks this list against the dbt project's mart models, so the
two cannot drift apart.
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
# A dimension whose members are derived one to one from a versions model (and from nothing
# else): a member changes only when it gets a new version, so publish compares only those
# members, found by version id, unless a build re-derived the whole dimension. The others are a
# few thousand rows and are compared whole. tests/publish/test_marts.py checks the lineage.
MEMBER_VERSIONS: Mapping[str, str] = {  # dimension → its versions model (schema intermediate)
    "dim_transaction": "int_transaction__versions",
}
VERSIONS_SCHEMA = "intermediate"
DELETIONS: Mapping[str, str] = {  # append-only table of deletions → its id, published like a fact
    "deletions": "deletion_id",
}
TABLES: tuple[str, ...] = (*DIMENSIONS, *FACTS)  # dimensions first: the order they publish in
