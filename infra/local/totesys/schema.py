"""The totesys schema: create it, drop it, and see what a database already holds."""

from __future__ import annotations

from importlib import resources

import pg8000.native

from runtime.db import quote_ident

# Business tables in an order that respects their foreign keys (parents first).
TOTESYS_TABLES = (
    "address",
    "counterparty",
    "currency",
    "department",
    "design",
    "payment_type",
    "staff",
    "sales_order",
    "purchase_order",
    "transaction",
    "payment",
)
PRISMA_TABLE = "_prisma_migrations"
ENUM_TYPES = ("PaymentTypeName", "TransactionType")
PRIMARY_KEYS = {table: f"{table}_id" for table in TOTESYS_TABLES}


def create_schema(conn: pg8000.native.Connection) -> None:
    """The whole empty schema (types, tables, sequences, keys, indexes), in one transaction."""
    conn.run("START TRANSACTION")
    try:
        create_tables(conn)
        add_constraints(conn)
        conn.run("COMMIT")
    except BaseException:
        conn.run("ROLLBACK")
        raise


def create_tables(conn: pg8000.native.Connection) -> None:
    """Types, sequences and bare tables: the part a bulk load runs after."""
    _run_file(conn, "schema_pre.sql")


def add_constraints(conn: pg8000.native.Connection) -> None:
    """Primary keys, unique indexes and foreign keys: the part a bulk load runs before."""
    _run_file(conn, "schema_post.sql")


def drop_schema(conn: pg8000.native.Connection) -> None:
    """Drop the totesys tables and types. No CASCADE: a foreign object depending on them fails."""
    names = ", ".join(quote_ident(t) for t in (*TOTESYS_TABLES, PRISMA_TABLE))
    conn.run(f"DROP TABLE IF EXISTS {names}")
    conn.run(f"DROP TYPE IF EXISTS {', '.join(quote_ident(t) for t in ENUM_TYPES)}")


def user_tables(conn: pg8000.native.Connection) -> list[tuple[str, str]]:
    """Every (schema, table) a user created in this database, whatever the schema."""
    rows = conn.run(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        " AND table_schema NOT LIKE 'pg\\_%'"
        " ORDER BY 1, 2"
    )
    return [(schema, table) for schema, table in rows]


def foreign_tables(conn: pg8000.native.Connection) -> list[str]:
    """Tables that are not totesys's: a sign this database belongs to something else."""
    (current,) = conn.run("SELECT current_schema()")[0]
    ours = {(current, t) for t in (*TOTESYS_TABLES, PRISMA_TABLE)}
    return [f"{s}.{t}" for s, t in user_tables(conn) if (s, t) not in ours]


def present_tables(conn: pg8000.native.Connection) -> list[str]:
    """The totesys business tables that exist in the current schema."""
    (current,) = conn.run("SELECT current_schema()")[0]
    return [t for s, t in user_tables(conn) if s == current and t in TOTESYS_TABLES]


def tables_with_rows(conn: pg8000.native.Connection) -> list[str]:
    return [
        t
        for t in present_tables(conn)
        if conn.run(f"SELECT EXISTS (SELECT 1 FROM {quote_ident(t)})")[0][0]  # noqa: S608 - quoted
    ]


def _run_file(conn: pg8000.native.Connection, name: str) -> None:
    for statement in _statements(resources.files(__package__).joinpath(name).read_text()):
        conn.run(statement)


def _statements(script: str) -> list[str]:
    """Split a script we wrote ourselves: comments on their own lines, `;` only at line ends."""
    body = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip().rstrip(";") for s in (body + "\n").split(";\n") if s.strip()]
