"""How far the marts are known to reach: the per-table horizon of a verification.

`totesys` keeps changing while the pipeline runs, so a row changed since the marts were built is
not drift: it is in flight, and the next cycle brings it. The horizon of a table is the
`watermark.high` of the newest loaded manifest through which the marts are built: every version
with `last_updated` below it was visible to that extract (the watermark is bounded by the
oldest open transaction on the source) and shipped by it or by an earlier run. A source row
whose `last_updated` (or a joined row's) is at or above it is in flight; everything else must
match.

Through which manifest are the marts built? The intermediate models record the newest manifest
each has read (`_manifest_seq`): the greatest of them, S, was read by a `dbt build` that saw
everything loaded before it. Manifests loaded after S that hold no rows and no deletions
(`raw._deletions`, once delete capture loads them) change nothing, so the horizon moves on
through them; the first one after S that holds either has not been built yet.
While a build is under way (a `dbt` session is connected, or a fact holds fewer versions than
its intermediate model) S itself counts as not built yet: the build may have read it into the
intermediate models and not yet into the marts. A silent change or a deletion never moves
`last_updated`, so it is never mistaken for a change in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runtime.db import qualified, quote_ident

INTERMEDIATE = "intermediate"
# Each fact, its surrogate key, and the intermediate model its versions come from.
FACT_VERSIONS = {
    "fact_sales_order": ("sales_record_id", "int_sales_order__versions"),
    "fact_purchase_order": ("purchase_record_id", "int_purchase_order__versions"),
    "fact_payment": ("payment_record_id", "int_payment__versions"),
}


@dataclass(frozen=True)
class Horizon:
    built_seq: int | None  # the newest manifest the marts are built through
    building: bool  # a dbt build looked under way: its newest manifest counts as in flight
    by_table: dict[str, datetime | None] = field(default_factory=dict)

    def of(self, tables: tuple[str, ...]) -> datetime | None:
        """The horizon of rows read from `tables` together: the earliest of theirs. None when
        a table has none (never loaded): then nothing of it is in flight."""
        marks = [self.by_table.get(t) for t in tables]
        if any(m is None for m in marks):
            return None
        return min(m for m in marks if m is not None)


def read_horizon(warehouse: Any, tables: tuple[str, ...]) -> Horizon:
    """The horizon of each source table, read inside the warehouse snapshot."""
    if not _exists(warehouse, "raw", "_manifest_tables"):
        return Horizon(None, False, {t: None for t in tables})
    models = [
        qualified(INTERMEDIATE, f"int_{t}__versions")
        for t in tables
        if _exists(warehouse, INTERMEDIATE, f"int_{t}__versions")
    ]
    read_through = None
    if models:
        union = " union all ".join(f"select max(_manifest_seq) as seq from {m}" for m in models)  # noqa: S608 - identifiers quoted
        [[read_through]] = warehouse.run(f"select max(seq) from ({union}) as read")  # noqa: S608 - identifiers quoted
    building = _dbt_connected(warehouse) or _facts_behind(warehouse)
    built = read_through - 1 if (read_through and building) else read_through
    # A manifest holding rows or deletions waits for a build; one holding neither does not.
    deletions = (
        " union all select _manifest_seq from raw._deletions where _manifest_seq > :built"
        if _exists(warehouse, "raw", "_deletions")
        else ""
    )
    [[first_unbuilt]] = warehouse.run(
        "select min(seq) from (select seq from raw._manifest_tables where seq > :built "  # noqa: S608 - constant text
        f"group by seq having sum(rows) > 0{deletions}) as pending",
        built=built or 0,
    )
    [[loaded_through]] = warehouse.run(
        "select max(seq) from raw._manifest_ledger where status = 'loaded'"
    )
    if loaded_through is None:
        return Horizon(None, building, {t: None for t in tables})
    through = loaded_through if first_unbuilt is None else min(loaded_through, first_unbuilt - 1)
    marks = dict(
        warehouse.run(
            "select distinct on (table_name) table_name, watermark_high "
            "from raw._manifest_tables where seq <= :through "
            "order by table_name, seq desc",
            through=through,
        )
    )
    return Horizon(through, building, {t: marks.get(t) for t in tables})


def _exists(conn: Any, schema: str, name: str) -> bool:
    [[found]] = conn.run("select to_regclass(:name) is not null", name=qualified(schema, name))
    return bool(found)


def _dbt_connected(conn: Any) -> bool:
    """dbt (application_name `dbt`, dbt-postgres's default) has a session on this database."""
    [[found]] = conn.run(
        "select exists (select 1 from pg_catalog.pg_stat_activity "
        "where datname = current_database() and pid <> pg_backend_pid() "
        "and application_name like 'dbt%')"
    )
    return bool(found)


def _facts_behind(conn: Any) -> bool:
    """A fact lacks a passing version its intermediate model holds: a build is mid-way."""
    for fact, (record_id, model) in FACT_VERSIONS.items():
        if not (_exists(conn, "marts", fact) and _exists(conn, INTERMEDIATE, model)):
            continue
        [[behind]] = conn.run(
            f"select (select coalesce(max(version_id), 0) from {qualified(INTERMEDIATE, model)} "  # noqa: S608 - identifiers quoted
            f"where _quarantine_reason is null) > (select coalesce(max({quote_ident(record_id)}), "
            f"0) from {qualified('marts', fact)})"
        )
        if behind:
            return True
    return False
