"""Create and evolve the raw table of one source table from its manifest entry.

Runs inside the load transaction, so a table created or altered for a manifest that then fails
is rolled back with it. Raw columns are nullable: a column added later must be (old rows have
no value), and non-null source columns are checked on the data instead (`copyin`).

Widening under views. Postgres refuses `ALTER COLUMN ... TYPE` on a column a view reads, and
dbt's staging views read every raw column, so a widened source column would block the loader
for good. The loader therefore saves the views that depend on the raw table (recursively: views
over those views too), drops them, alters the column and re-creates them from their saved
definitions (`pg_get_viewdef`, which spells every column out), with their options, owner,
grants and comments, all in the load transaction: a crash leaves the old table and views. A
re-created view keeps its column names; its types follow the new raw type unless it casts
(Postgres keeps no cast to a column's own type, so `x::integer` over an integer column follows
too). dbt re-creates its staging views from their SQL at the next build, where each column is
cast to the type the marts' contracts name, so the marts are unchanged.
Keeping raw at the widest types from the start was the other way, but warehouses that exist
already would still need this, and raw should say what the source holds.

A change raw cannot take without loss (text to integer, timestamp to date) stays an error that
stops the manifest once, naming the column and the commands that resolve it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pg8000.native

from lambda_loader import rawtypes
from lambda_loader.errors import ManifestError, SchemaChangeError
from runtime.db import qualified, quote_ident
from runtime.lake import TableEntry

RAW_SCHEMA = "raw"
# Lineage columns, after the source columns, in this order (docs/CONTRACTS.md).
LINEAGE = (
    ("_manifest_seq", "bigint"),
    ("_run_id", "text"),
    ("_source_file", "text"),
    ("_loaded_at", "timestamp with time zone"),
)
LINEAGE_NAMES = tuple(name for name, _ in LINEAGE)
# Each lineage column's DEFAULT reads the value the loader sets for its transaction
# (`set_config(LINEAGE_SETTINGS[name], value, true)`, lambda_loader/copyin.py), so COPY sends
# only the data columns: the lineage strings were more than half of a narrow table's bytes.
# The functions are IMMUTABLE on purpose: the planner then evaluates each once per COPY (or
# INSERT) statement, a constant for all its rows; evaluated per row, they cost the server about
# as much as parsing the values. An unset value is NULL, which the NOT NULL refuses.
LINEAGE_SETTINGS = {name: f"totes.lineage{name}" for name in LINEAGE_NAMES}
LINEAGE_DEFAULTS = {name: f"{RAW_SCHEMA}._lineage{name}()" for name in LINEAGE_NAMES}


@dataclass
class TableChanges:
    """What `ensure_table` did, for the log."""

    created: bool = False
    added: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    missing_from_source: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return self.created or bool(self.added or self.widened)


def ensure_table(
    conn: pg8000.native.Connection, entry: TableEntry, manifest_key: str, seq: int | None = None
) -> TableChanges:
    """Make raw.<table> able to take this manifest entry's columns without loss, or raise.

    `seq` (the manifest's) is named in the error's remedy, `totes load --skip SEQ`."""
    wanted = _wanted_types(entry, manifest_key)
    table = qualified(RAW_SCHEMA, entry.table)
    existing = current_columns(conn, entry.table)
    changes = TableChanges()
    if not existing:
        create_lineage_functions(conn)
        columns = [f"{quote_ident(n)} {t.sql}" for n, t in wanted.items()]
        columns += [
            f"{quote_ident(n)} {t} NOT NULL DEFAULT {LINEAGE_DEFAULTS[n]}" for n, t in LINEAGE
        ]
        conn.run(f"CREATE TABLE {table} ({', '.join(columns)})")
        index_manifest_seq(conn, entry.table)
        changes.created = True
        return changes
    index_manifest_seq(conn, entry.table)  # a table created before the index existed
    ensure_lineage_defaults(conn, entry.table)  # ... or before the lineage defaults
    widen: dict[str, tuple[rawtypes.RawType, rawtypes.RawType]] = {}
    for name, want in wanted.items():
        have = existing.get(name)
        if have is None:
            # ADD COLUMN is allowed under views: they keep the columns they were created with.
            conn.run(f"ALTER TABLE {table} ADD COLUMN {quote_ident(name)} {want.sql}")
            changes.added.append(name)
            continue
        target = rawtypes.union(want, have)
        if target is None:
            raise SchemaChangeError(_blocked(manifest_key, seq, entry.table, name, have, want))
        if target != have:
            widen[name] = (have, target)
    if widen:
        with views_set_aside(conn, entry.table):
            # USING makes the cast explicit; every widening here is exact for existing values.
            conn.run(
                f"ALTER TABLE {table} "
                + ", ".join(
                    f"ALTER COLUMN {quote_ident(n)} TYPE {t.sql} USING {quote_ident(n)}::{t.sql}"
                    for n, (_, t) in widen.items()
                )
            )
        changes.widened = [f"{n}: {h.sql} -> {t.sql}" for n, (h, t) in widen.items()]
    changes.missing_from_source = [
        n for n in existing if n not in wanted and n not in LINEAGE_NAMES
    ]
    return changes


def index_manifest_seq(conn: pg8000.native.Connection, table: str) -> None:
    """A BRIN index on `_manifest_seq`, if the table has none: dbt reads raw by
    `_manifest_seq > N` (its incremental models, the tests of a build's new rows), and with it
    reads only the newest block ranges instead of the whole table. BRIN because raw is
    append-only in seq order: each range's min/max is tight, the index is a few pages, and a
    COPY barely pays for it. The catalog is looked at first: CREATE INDEX IF NOT EXISTS would
    still lock the table."""
    name = f"{table}__manifest_seq"
    if conn.run("SELECT to_regclass(:name) IS NULL", name=qualified(RAW_SCHEMA, name))[0][0]:
        conn.run(
            f"CREATE INDEX IF NOT EXISTS {quote_ident(name)} ON {qualified(RAW_SCHEMA, table)}"
            " USING brin (_manifest_seq)"
        )


def create_lineage_functions(conn: pg8000.native.Connection) -> None:
    """The lineage defaults' functions (LINEAGE_DEFAULTS), created or replaced."""
    for name, sql_type in LINEAGE:
        value = f"nullif(current_setting('{LINEAGE_SETTINGS[name]}', true), '')::{sql_type}"
        conn.run(
            f"CREATE OR REPLACE FUNCTION {LINEAGE_DEFAULTS[name]} RETURNS {sql_type}"
            f" LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT {value} $$"
        )


def ensure_lineage_defaults(conn: pg8000.native.Connection, table: str) -> None:
    """Give an existing raw table's lineage columns their defaults, if it has not got them (a
    table made before they existed): a catalog-only ALTER, once; afterwards this only reads."""
    rows = conn.run(
        "SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = to_regclass(:table) AND a.attname = ANY(CAST(:names AS text[]))"
        " AND NOT a.attisdropped",
        table=qualified(RAW_SCHEMA, table),
        names=list(LINEAGE_NAMES),
    )
    schema = f"{RAW_SCHEMA}."  # pg_get_expr leaves it out when raw is on the search path
    have = {name: (default or "").removeprefix(schema) for name, default in rows}
    missing = [n for n in LINEAGE_NAMES if have.get(n) != LINEAGE_DEFAULTS[n].removeprefix(schema)]
    if not missing:
        return
    create_lineage_functions(conn)
    conn.run(
        f"ALTER TABLE {qualified(RAW_SCHEMA, table)} "
        + ", ".join(
            f"ALTER COLUMN {quote_ident(n)} SET DEFAULT {LINEAGE_DEFAULTS[n]}" for n in missing
        )
    )


def _blocked(
    manifest_key: str,
    seq: int | None,
    table: str,
    column: str,
    have: rawtypes.RawType,
    want: rawtypes.RawType,
) -> str:
    skip = f"totes load --skip {seq if seq is not None else 'SEQ'} --reason TEXT"
    return (
        f"manifest {manifest_key}: column raw.{table}.{column} is {have.sql} in the warehouse "
        f"but the source now sends {want.sql}; converting would lose data, so the load stopped "
        f"(later manifests wait behind it). To resolve: if the source was wrong and is put back, "
        f"`{skip}` (this manifest's rows are not loaded); to accept the new type, migrate the "
        f"column by hand (ALTER TABLE raw.{quote_ident(table)} ALTER COLUMN "
        f"{quote_ident(column)} TYPE {want.sql} USING ..., dropping the staging views over it: "
        "dbt build re-creates them), then `totes load`."
    )


@dataclass(frozen=True)
class _SavedView:
    """A view as the catalog holds it, enough to re-create it exactly."""

    schema: str
    name: str
    definition: str
    options: list[str]
    owner: str
    grants: list[tuple[str, str, bool]]  # grantee ("" = PUBLIC), privilege, with grant option
    comment: str | None
    column_comments: dict[str, str]
    has_acl: bool

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)


@contextmanager
def views_set_aside(conn: pg8000.native.Connection, table: str) -> Iterator[None]:
    """Drop the views that read raw.<table> (and views over them) for the block, then re-create
    them as they were. Runs inside the caller's transaction: an error rolls all of it back."""
    path = conn.run("SELECT current_setting('search_path')")[0][0]
    # With only pg_catalog on the path, pg_get_viewdef qualifies every name, and re-creating
    # under the same path resolves each name to the same object.
    # The setting is local to the transaction, so a failure (which rolls it back) restores it.
    conn.run("SELECT set_config('search_path', 'pg_catalog', true)")
    saved = _dependent_views(conn, table)
    for view in reversed(saved):  # the views over other views first
        conn.run(f"DROP VIEW {view.qualified}")
    yield
    for view in saved:
        _recreate(conn, view)
    conn.run("SELECT set_config('search_path', :path, true)", path=path)


def _dependent_views(conn: pg8000.native.Connection, table: str) -> list[_SavedView]:
    """Views reading raw.<table>, directly or through other views, each after its inputs."""
    rows = conn.run(
        "WITH RECURSIVE deps(oid, depth) AS ("
        " SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid"
        " WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass"
        " AND d.refobjid = to_regclass(:table) AND r.ev_class <> d.refobjid"
        " UNION"
        " SELECT r.ev_class, deps.depth + 1 FROM deps JOIN pg_depend d ON d.refobjid = deps.oid"
        " JOIN pg_rewrite r ON r.oid = d.objid"
        " WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass"
        " AND r.ev_class <> deps.oid)"
        " SELECT c.oid, n.nspname, c.relname, c.relkind, pg_get_viewdef(c.oid),"
        " coalesce(c.reloptions, '{}'), pg_get_userbyid(c.relowner), c.relacl IS NOT NULL,"
        " obj_description(c.oid, 'pg_class'), v.depth"
        " FROM (SELECT oid, max(depth) AS depth FROM deps GROUP BY oid) v"
        " JOIN pg_class c ON c.oid = v.oid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " ORDER BY v.depth, n.nspname, c.relname",
        table=qualified(RAW_SCHEMA, table),
    )
    saved = []
    for oid, schema, name, kind, definition, options, owner, has_acl, comment, _ in rows:
        if kind != "v":  # a materialized view holds data; re-creating it is not the loader's job
            raise SchemaChangeError(
                f"raw.{table} is read by {schema}.{name} (relkind {kind}), which the loader "
                "cannot re-create around a column type change; drop it, load, re-create it"
            )
        grants = conn.run(
            "SELECT coalesce(pg_get_userbyid(NULLIF(a.grantee, 0)), ''), a.privilege_type,"
            " a.is_grantable FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = :oid",
            oid=oid,
        )
        column_comments = conn.run(
            "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a"
            " WHERE a.attrelid = :oid AND a.attnum > 0 AND NOT a.attisdropped"
            " AND col_description(a.attrelid, a.attnum) IS NOT NULL",
            oid=oid,
        )
        saved.append(
            _SavedView(
                schema,
                name,
                definition,
                list(options),
                owner,
                [(g, p, bool(w)) for g, p, w in grants],
                comment,
                dict(column_comments),
                bool(has_acl),
            )
        )
    return saved


def _recreate(conn: pg8000.native.Connection, view: _SavedView) -> None:
    name = view.qualified
    options = _view_options(conn, view.options)
    conn.run(f"CREATE VIEW {name}{options} AS {view.definition.rstrip().rstrip(';')}")
    conn.run(f"ALTER VIEW {name} OWNER TO {quote_ident(view.owner)}")
    if view.has_acl:  # an explicit ACL replaces the owner's default one, exactly
        conn.run(f"REVOKE ALL ON {name} FROM {quote_ident(view.owner)}")
        for grantee, privilege, grantable in view.grants:
            to = quote_ident(grantee) if grantee else "PUBLIC"
            option = " WITH GRANT OPTION" if grantable else ""
            conn.run(f"GRANT {_privilege(privilege)} ON {name} TO {to}{option}")
    if view.comment is not None:
        conn.run(f"COMMENT ON VIEW {name} IS {_literal(conn, view.comment)}")
    for column, comment in view.column_comments.items():
        conn.run(f"COMMENT ON COLUMN {name}.{quote_ident(column)} IS {_literal(conn, comment)}")


def _view_options(conn: pg8000.native.Connection, options: list[str]) -> str:
    """`reloptions` ('security_barrier=true', 'check_option=local') as a WITH clause."""
    if not options:
        return ""
    parts = []
    for option in options:
        key, _, value = option.partition("=")
        parts.append(f"{quote_ident(key)} = {_literal(conn, value)}")
    return f" WITH ({', '.join(parts)})"


_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}
)


def _privilege(name: str) -> str:
    if name not in _PRIVILEGES:
        raise SchemaChangeError(f"unknown table privilege {name!r} on a view over raw")
    return name


def _literal(conn: pg8000.native.Connection, text: str) -> str:
    """`text` as a literal, quoted by the server: COMMENT and WITH (...) take no parameters."""
    return str(conn.run("SELECT quote_literal(CAST(:text AS text))", text=text)[0][0])


def source_columns(conn: pg8000.native.Connection) -> dict[str, list[str]]:
    """Every raw table's source columns (lineage left out), in order, for `totes status`."""
    rows = conn.run(
        "SELECT c.relname, a.attname FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = :schema AND c.relkind = 'r' AND c.relname NOT LIKE '\\_%'"
        " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum",
        schema=RAW_SCHEMA,
    )
    found: dict[str, list[str]] = {}
    for table, column in rows:
        if column not in LINEAGE_NAMES:
            found.setdefault(table, []).append(column)
    return found


def current_columns(conn: pg8000.native.Connection, table: str) -> dict[str, rawtypes.RawType]:
    """The raw table's columns and types in order; empty when the table does not exist."""
    rows = conn.run(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relname = :table AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum",
        schema=RAW_SCHEMA,
        table=table,
    )
    return {name: rawtypes.from_catalog(sql) for name, sql in rows}


def _wanted_types(entry: TableEntry, manifest_key: str) -> dict[str, rawtypes.RawType]:
    wanted: dict[str, rawtypes.RawType] = {}
    for column in entry.columns:
        if column.name in LINEAGE_NAMES or column.name in wanted:
            raise ManifestError(
                f"manifest {manifest_key}: table {entry.table} has a duplicate or reserved "
                f"column name {column.name!r}",
                file=manifest_key,
            )
        try:
            wanted[column.name] = rawtypes.for_column(column)
        except rawtypes.UnsupportedType as err:
            raise SchemaChangeError(
                f"manifest {manifest_key}: table {entry.table}: {err}", file=manifest_key
            ) from err
    return wanted
