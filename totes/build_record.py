"""`ops.dbt_builds`: what each successful cycle build was made from, so a cycle can tell that a
build would change nothing and skip it, and that the docs site would be the same and not upload
it again.

A build's marts are a function of three things, each fingerprinted here:

- the project: every file of the dbt project (models, macros, seeds, YAML) and the dbt-core and
  dbt-postgres versions (`totes.dbt_build.project_hash`, the hash dbt's build ledger is keyed
  by too);
- its inputs: the load ledger, `raw._manifest_ledger`, to which the loader only ever adds one
  row per manifest (loaded or skipped), each in the transaction that changes raw: the count,
  newest `seq` and newest `loaded_at` of the manifests that brought rows change with every load
  that changed raw, and so do the count and newest manifest of the deletions in
  `raw._deletions` (`inputs_digest`); a schema change the loader makes re-creates dbt's
  views over raw, which the relations below show;
- the warehouse's relations as the build left them: the oid of every table and view in the
  schemas dbt writes. A relation dropped or re-created by hand (or by a `dbt build` run outside
  the cycle) changes it, so the next cycle builds again (`relations_digest`).

No model reads the clock (dim_date is a fixed calendar), so a build over the same three is the
same build: the cycle skips dbt when all three equal those of the newest successful build
(`newest_build`, `RecordedBuild.made_from`). The docs site (`dbt docs generate`) shows the
project and the columns of the relations, so it is published again only when the project or
those columns differ from the site last published (`docs_digest`, `docs_published_with`).
A cycle whose build was skipped skips the publish step too when a publish already finished
with that build's marts (`marts_published`): the marts are the same, so there is nothing new
to upload. And a build of the project the newest successful build was of leaves dbt's unit
tests out: they read fixed inputs only, so they cannot fail where they passed.

Written by the local cycle (`totes/cycle.py`), one row per successful build, never by dbt. The
CodeBuild job in AWS builds on every cycle and does not use it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pg8000.native

from runtime.db import run_ddl_once
from totes.dbt_build import project_hash

_DDL_LOCK = 7_412_014  # pg_advisory_xact_lock key for the DDL below (see totes/ops.py)
# What dbt writes and the loader owns: the schemas whose relations a build depends on.
DBT_SCHEMAS = ("staging", "intermediate", "marts", "quarantine")
SOURCE_SCHEMAS = ("raw",)

_DDL = (
    "create schema if not exists ops",
    """
    create table if not exists ops.dbt_builds (
        run_id text primary key,
        built_at timestamptz not null default clock_timestamp(),
        project text not null,
        inputs text not null,
        relations text not null,
        docs text not null,
        docs_published boolean not null default false,
        marts_published boolean not null default false
    )
    """,
    "create index if not exists dbt_builds_built_at on ops.dbt_builds (built_at desc)",
)


@dataclass(frozen=True)
class BuildState:
    """The fingerprints of one build: what `RecordedBuild.made_from` compares."""

    project: str
    inputs: str
    relations: str
    docs: str


def inputs_digest(conn: pg8000.native.Connection) -> str:
    """The load ledger's count, newest seq and newest load time ('none' before any load)."""
    if not conn.run("select to_regclass('raw._manifest_ledger') is not null")[0][0]:
        return "none"
    # A manifest that brought no rows (every idle cycle commits one) or was skipped by the
    # operator changes no raw row, and no model reads the ledger itself.
    [[count, seq, loaded_at]] = conn.run(
        "select count(*), max(seq), max(loaded_at)::text from raw._manifest_ledger "
        "where status = 'loaded' and rows > 0"
    )
    # A manifest with deletions only brings no rows to the ledger: its tombstones are in
    # raw._deletions (lambda_loader/deletions.py), which only ever grows.
    deleted = "none"
    if conn.run("select to_regclass('raw._deletions') is not null")[0][0]:
        [[tombstones, newest]] = conn.run("select count(*), max(_manifest_seq) from raw._deletions")
        deleted = f"{tombstones}:{newest}"
    return f"{count}:{seq}:{loaded_at}:{deleted}"


def relations_digest(conn: pg8000.native.Connection) -> str:
    """md5 over (schema, name, oid) of every table and view in the schemas dbt builds."""
    [[found]] = conn.run(
        "select coalesce(md5(string_agg(n.nspname || '.' || c.relname || ':' || c.oid::text, "
        "',' order by n.nspname, c.relname)), 'none') "
        "from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = any(:schemas) and c.relkind in ('r', 'v', 'm', 'p')",
        schemas=list(DBT_SCHEMAS),
    )
    return str(found)


def docs_digest(conn: pg8000.native.Connection, project: str) -> str:
    """What the docs site shows: the project, and every column (name, type, position) of the
    relations in the schemas dbt builds and reads."""
    [[columns]] = conn.run(
        "select coalesce(md5(string_agg(concat_ws(':', table_schema, table_name, column_name, "
        "ordinal_position::text, data_type, character_maximum_length::text, "
        "numeric_precision::text, numeric_scale::text), ',' "
        "order by table_schema, table_name, ordinal_position)), 'none') "
        "from information_schema.columns where table_schema = any(:schemas)",
        schemas=[*DBT_SCHEMAS, *SOURCE_SCHEMAS],
    )
    return hashlib.sha256(f"{project}:{columns}".encode()).hexdigest()


def current_inputs(conn: pg8000.native.Connection, project_dir: Path) -> BuildState:
    """The fingerprints as the warehouse stands now (`docs` is left empty: it is taken after a
    build, when the relations hold their new columns)."""
    return BuildState(project_hash(project_dir), inputs_digest(conn), relations_digest(conn), "")


@dataclass(frozen=True)
class RecordedBuild:
    """The newest row of `ops.dbt_builds`: the newest successful build."""

    run_id: str
    project: str
    inputs: str
    relations: str

    def made_from(self, state: BuildState) -> bool:
        """Whether `state`'s project, inputs and relations are this build's: a build over them
        would change nothing."""
        return (self.project, self.inputs, self.relations) == (
            state.project,
            state.inputs,
            state.relations,
        )


def newest_build(conn: pg8000.native.Connection) -> RecordedBuild | None:
    """The newest successful build, None before the first. A cycle skips dbt when it was
    `made_from` what the warehouse holds now, and leaves dbt's unit tests out when it was of
    the same project (they read fixed inputs only, so they passed on it)."""
    if not _recorded(conn):
        return None
    rows = conn.run(
        "select run_id, project, inputs, relations from ops.dbt_builds "
        "order by built_at desc limit 1"
    )
    return RecordedBuild(*(str(v) for v in rows[0])) if rows else None


def docs_published_with(conn: pg8000.native.Connection, docs: str) -> str | None:
    """The run id whose published docs site was built from `docs` (a docs fingerprint), if the
    newest published site was; else None (the site must be generated and published)."""
    if not _recorded(conn):
        return None
    rows = conn.run(
        "select run_id, docs from ops.dbt_builds where docs_published "
        "order by built_at desc limit 1"
    )
    if rows and rows[0][1] == docs:
        return str(rows[0][0])
    return None


def record_build(conn: pg8000.native.Connection, run_id: str, state: BuildState) -> None:
    """Remember a successful build; `state.relations` and `state.docs` as the build left them."""
    run_ddl_once(conn, _DDL_LOCK, _DDL)
    conn.run(
        "insert into ops.dbt_builds (run_id, project, inputs, relations, docs) "
        "values (:run_id, :project, :inputs, :relations, :docs) "
        "on conflict (run_id) do update set built_at = clock_timestamp(), "
        "project = excluded.project, inputs = excluded.inputs, "
        "relations = excluded.relations, docs = excluded.docs, docs_published = false",
        run_id=run_id,
        project=state.project,
        inputs=state.inputs,
        relations=state.relations,
        docs=state.docs,
    )


def record_marts_published(conn: pg8000.native.Connection, run_id: str) -> None:
    """A publish finished with the marts of `run_id`'s build: every row and member is in the
    processed bucket, and nothing pending."""
    conn.run(
        "update ops.dbt_builds set marts_published = true where run_id = :run_id", run_id=run_id
    )


def marts_published(conn: pg8000.native.Connection, run_id: str) -> bool:
    """Whether a publish finished with the marts of `run_id`'s build."""
    rows = conn.run(
        "select marts_published from ops.dbt_builds where run_id = :run_id", run_id=run_id
    )
    return bool(rows and rows[0][0])


def record_docs_published(conn: pg8000.native.Connection, run_id: str) -> None:
    """The publish step uploaded the docs site of `run_id`'s build."""
    conn.run(
        "update ops.dbt_builds set docs_published = true where run_id = :run_id", run_id=run_id
    )


def _recorded(conn: pg8000.native.Connection) -> bool:
    """Whether `ops.dbt_builds` exists (it does once a build has succeeded)."""
    return bool(conn.run("select to_regclass('ops.dbt_builds') is not null")[0][0])
