"""The publish step's bookkeeping in the warehouse's `ops` schema, written by `publish.publish`
only (never by dbt):

- `ops.publish_ledger`: per fact (and `deletions`, published the same way), the highest
  surrogate key (deletion id) already in the processed bucket.
- `ops.publish_files`: every object the publish step intends to write (`pending`) or has written
  (`done`); a pending row is how a publish that crashed mid-way is finished by the next one.
- `ops.publish_dim_state`: per dimension member, the hash of the row last published.
- `ops.publish_dim_pending`: the members (and hashes) a pending dimension file holds.
- `ops.publish_dim_checked`: per dimension, the dbt build of it (`ops.dbt_model_builds`) whose
  result the publish step has compared already: a dimension no build has touched since is not
  read again.
- `ops.publish_glue`: the Glue partitions registered, with the table schema they were
  registered under: a file for a registered day and an unchanged schema makes no Glue call.

`ops.cycle_runs`, in the same schema, is the local cycle's (`totes.ops`).
"""

from __future__ import annotations

import pg8000.native

from runtime.db import run_ddl_once

SCHEMA = "ops"
_DDL_LOCK = 7_412_003  # pg_advisory_xact_lock key: concurrent `create ... if not exists` race

_DDL = (
    "create schema if not exists ops",
    """
    create table if not exists ops.publish_ledger (
        table_name text primary key,
        last_key bigint not null,
        published_at timestamptz not null
    )
    """,
    """
    create table if not exists ops.publish_files (
        object_key text primary key,
        table_name text not null,
        kind text not null check (kind in ('fact', 'dim', 'docs')),
        first_key bigint,
        last_key bigint,
        rows bigint,
        status text not null check (status in ('pending', 'done')),
        run_id text not null,
        created_at timestamptz not null default now(),
        published_at timestamptz
    )
    """,
    "create index if not exists publish_files_pending on ops.publish_files (table_name)"
    " where status = 'pending'",
    """
    create table if not exists ops.publish_dim_state (
        table_name text not null,
        member_key text not null,
        row_hash text not null,
        published_at timestamptz not null,
        primary key (table_name, member_key)
    )
    """,
    """
    create table if not exists ops.publish_dim_pending (
        object_key text not null references ops.publish_files (object_key) on delete cascade,
        member_key text not null,
        row_hash text not null,
        primary key (object_key, member_key)
    )
    """,
    """
    create table if not exists ops.publish_dim_checked (
        table_name text primary key,
        built_at timestamptz not null,
        checked_at timestamptz not null,
        version_id bigint  -- MEMBER_VERSIONS: the newest version its comparison covered
    )
    """,
    "alter table ops.publish_dim_checked add column if not exists version_id bigint",
    """
    create table if not exists ops.publish_glue (
        table_name text not null,
        published_on date not null,
        schema_hash text not null,
        registered_at timestamptz not null,
        primary key (table_name, published_on)
    )
    """,
)


def ensure_schema(conn: pg8000.native.Connection) -> None:
    """Create the publish tables if absent (safe when several publishes start at once)."""
    run_ddl_once(conn, _DDL_LOCK, _DDL)


def published_through(conn: pg8000.native.Connection) -> dict[str, int]:
    """Per fact (and `deletions`), the highest surrogate key in the lake; empty before the
    first publish."""
    if conn.run("select to_regclass('ops.publish_ledger') is null")[0][0]:
        return {}
    return {t: int(k) for t, k in conn.run("select table_name, last_key from ops.publish_ledger")}
