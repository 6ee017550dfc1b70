"""The lake copy of the marts: new fact rows, changed dimension members and new deletions as
immutable Parquet.

After a successful `dbt build`, every mart table gets new files in the processed bucket, one
prefix per table, registered in the Glue Data Catalog (see `publish.glue`); the tables are
`publish.marts`'s, the bookkeeping `publish.ledger`'s (the docs site is `publish.docs`'s):

    marts/<fact>/<yyyy>/<mm>/<dd>/<first_key:010d>-<last_key:010d>.parquet
    marts/<dim>/<yyyy>/<mm>/<dd>/<run_id>-<content digest>.parquet
    marts/deletions/<yyyy>/<mm>/<dd>/<first_id:010d>-<last_id:010d>.parquet

Facts: the rows whose surrogate key is above the table's `ops.publish_ledger.last_key`, exactly
once. Deletions (`marts.deletions`, one row per source row deleted) are published the same way,
by ranges of their deletion id, after the facts: a reader who sees a deletion also sees every
version it ends. Dimensions (which have no version key): the members whose row hash (`md5` of
the whole row) differs from the one in `ops.publish_dim_state`, plus new members (new dates in
dim_date); each dim file also carries `published_at`, so the newest file holding a member has
its current values. A deleted member stays in its dimension's files, as in the warehouse (its
deletion is in `deletions`). Columns otherwise are the mart's, with the types of
`runtime.pg_arrow` (time as text).

Exactly once, crash-safe, never overwriting. Each file is first planned in `ops.publish_files`
(status `pending`, with its key range or its members) and committed; then the object is put with
`IfNoneMatch="*"`; then, in one transaction, marked `done` and the ledger (facts) or member
hashes (dims) advanced. A publish that dies between the upload and the ledger update leaves a
pending row: the next publish re-puts that same object key, finds it already there (412) and only
finalises. So no object is ever written twice and no fact row appears in two files. Publishes are
serialised by a Postgres advisory lock held for the whole run.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pg8000.native
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from publish import glue, ledger
from publish.marts import DELETIONS, DIMENSIONS, FACTS, MEMBER_VERSIONS, VERSIONS_SCHEMA
from publish.marts import SCHEMA as MARTS
from publish.objects import PublishError, put_once
from runtime import logs, pg_arrow
from runtime.config import Settings
from runtime.db import qualified, quote_ident

ROWS_PER_FILE = 250_000
PUBLISHED_AT = "published_at"
_PUBLISH_LOCK = 7_412_002
PARQUET_TYPE = "application/vnd.apache.parquet"

UploadHook = Callable[["PublishedFile"], None]


@dataclass(frozen=True)
class PublishedFile:
    table: str
    key: str
    rows: int
    already_there: bool = False  # a retry found the object a crashed publish had written


@dataclass(frozen=True)
class PublishResult:
    run_id: str
    objects: tuple[PublishedFile, ...]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.objects)

    @property
    def files(self) -> int:
        return len(self.objects)

    def per_table(self) -> dict[str, dict[str, int]]:
        tables: dict[str, dict[str, int]] = {}
        for f in self.objects:
            entry = tables.setdefault(f.table, {"rows": 0, "files": 0})
            entry["rows"] += f.rows
            entry["files"] += 1
        return tables


def publish(
    settings: Settings,
    *,
    run_id: str | None = None,
    today: date | None = None,
    after_upload: UploadHook | None = None,
) -> PublishResult:
    """Publish every dimension's changed members, then every fact's new rows, then the new
    deletions.

    `today` names the date folder of new files (default: the UTC date). `after_upload` is a test
    hook called after each object is uploaded and before its ledger update: raising from it is
    exactly a crash at the worst moment.
    """
    run_id = run_id or logs.new_run_id()
    if not settings.processed_bucket:
        raise PublishError("PROCESSED_BUCKET is not set: nowhere to publish the marts")
    day = today or datetime.now(UTC).date()
    log = logs.run_logger("publish.publish", run_id)
    # No socket timeout: hashing a dimension of millions of members, or reading a fact's first
    # million rows, can outlast the default 30 s on a loaded machine without anything being wrong.
    conn = settings.warehouse_connection(timeout=None)
    try:
        ledger.ensure_schema(conn)
        conn.run("select pg_advisory_lock(:key)", key=_PUBLISH_LOCK)
        try:
            target = _Target(settings, conn, settings.client("s3"), run_id, day, after_upload, log)
            done: list[PublishedFile] = []
            for dim, member_key in DIMENSIONS.items():
                done += target.dimension(dim, member_key)
            for fact, surrogate in FACTS.items():
                done += target.fact(fact, surrogate)
            for table, deletion_id in DELETIONS.items():
                target.catalogued(table)
                done += target.fact(table, deletion_id)  # append-only by id, like a fact
        finally:
            conn.run("select pg_advisory_unlock(:key)", key=_PUBLISH_LOCK)
    finally:
        conn.close()
    result = PublishResult(run_id, tuple(done))
    log.info("marts published", rows=result.rows, files=result.files, tables=result.per_table())
    return result


# ---- one table at a time -----------------------------------------------------------------------


@dataclass
class _Target:
    settings: Settings
    conn: pg8000.native.Connection
    s3: Any
    run_id: str
    day: date
    after_upload: UploadHook | None
    log: logs.RunLogger

    def fact(self, table: str, surrogate: str) -> list[PublishedFile]:
        """Finish any planned file, plan files for the keys above the ledger, write them: for
        any append-only mart whose integer key only grows (a fact, `deletions`)."""
        columns = pg_arrow.table_columns(self.conn, MARTS, table)
        published = self._finish_facts(table, surrogate, columns)
        self._plan_facts(table, surrogate)
        return published + self._finish_facts(table, surrogate, columns)

    def dimension(self, table: str, member_key: str) -> list[PublishedFile]:
        """Settle a planned file left by a crash, then publish the members that changed: unless
        no dbt build has touched the dimension since this step last compared it."""
        self._settle_dimension(table)
        built, rebuilt = self._last_build(table)
        checked, seen = self._last_checked(table)
        if built is not None and built == checked:
            return []
        # Read before the comparison: versions added meanwhile are compared next time.
        newest = self._newest_version(table)
        narrow = seen is not None and built is not None and (rebuilt is None or rebuilt <= checked)
        columns = pg_arrow.table_columns(self.conn, MARTS, table)
        changed = self._changed_members(table, member_key, columns, seen if narrow else None)
        if changed.num_rows == 0:
            self._checked(table, built, newest)
            return []
        members = changed.column("_member_key").to_pylist()
        hashes = changed.column("_row_hash").to_pylist()
        digest = hashlib.sha256(
            "\n".join(f"{m}={h}" for m, h in zip(members, hashes, strict=True)).encode()
        ).hexdigest()[:16]
        key = f"marts/{table}/{self.day:%Y/%m/%d}/{self.run_id}-{digest}.parquet"
        self._transaction(
            (
                "insert into ops.publish_files (object_key, table_name, kind, rows, status, run_id)"
                " values (:key, :table, 'dim', :rows, 'pending', :run_id)"
                " on conflict (object_key) do nothing",
                {"key": key, "table": table, "rows": changed.num_rows, "run_id": self.run_id},
            ),
            (
                "insert into ops.publish_dim_pending (object_key, member_key, row_hash)"
                " select :key, m, h from unnest(cast(:members as text[]), cast(:hashes as text[]))"
                " as u(m, h) on conflict do nothing",
                {"key": key, "members": members, "hashes": hashes},
            ),
        )
        stamp = pa.array([datetime.now(UTC)] * changed.num_rows, pa.timestamp("ms", tz="UTC"))
        body = changed.select([c.name for c in columns]).append_column(
            pa.field(PUBLISHED_AT, stamp.type, nullable=False), stamp
        )
        file = self._upload(table, key, body)
        self._finalise_dimension(table, key)
        self._checked(table, built, newest)
        return [file]

    def catalogued(self, table: str) -> None:
        """Register `table` in Glue before its first file, once: lake readers anti-join
        `deletions` before the source has deleted anything (recorded like a registered day,
        under a schema hash no file has, so the first file still registers its partition)."""
        if self.conn.run("select 1 from ops.publish_glue where table_name = :t limit 1", t=table):
            return
        schema = pg_arrow.schema_of(pg_arrow.table_columns(self.conn, MARTS, table))
        glue.register(self.settings, table, schema, None)
        self.conn.run(
            "insert into ops.publish_glue (table_name, published_on, schema_hash, registered_at)"
            " values (:t, :day, :h, clock_timestamp()) on conflict (table_name, published_on)"
            " do nothing",
            t=table,
            day=self.day,
            h="table only",
        )

    def _last_build(self, table: str) -> tuple[datetime | None, datetime | None]:
        """When dbt last built `table`, and last re-derived all of it (its post-hook's record,
        committed with the model); None when nothing says so (a warehouse built before the
        record existed): then it is read whole."""
        if self.conn.run("select to_regclass('ops.dbt_model_builds') is null")[0][0]:
            return None, None
        found = self.conn.run(
            "select built_at, rebuilt_at from ops.dbt_model_builds where model = :t", t=table
        )
        return (found[0][0], found[0][1]) if found else (None, None)

    def _last_checked(self, table: str) -> tuple[datetime | None, int | None]:
        """The build this step last compared `table` after, and the newest version of its
        members that comparison covered (MEMBER_VERSIONS only)."""
        found = self.conn.run(
            "select built_at, version_id from ops.publish_dim_checked where table_name = :t",
            t=table,
        )
        return (found[0][0], found[0][1]) if found else (None, None)

    def _newest_version(self, table: str) -> int | None:
        versions = MEMBER_VERSIONS.get(table)
        if versions is None:
            return None
        [[newest]] = self.conn.run(
            f"select coalesce(max(version_id), 0) from {qualified(VERSIONS_SCHEMA, versions)}"  # noqa: S608 - identifiers quoted
        )
        return int(newest)

    def _checked(self, table: str, built: datetime | None, newest: int | None) -> None:
        """Everything the build at `built` left in `table` is published (read before the
        comparison: a build that lands meanwhile is newer, and compared next time)."""
        if built is None:
            return
        self.conn.run(
            "insert into ops.publish_dim_checked (table_name, built_at, checked_at, version_id)"
            " values (:t, :built, clock_timestamp(), :newest) on conflict (table_name) do update"
            " set built_at = excluded.built_at, checked_at = excluded.checked_at,"
            " version_id = excluded.version_id",
            t=table,
            built=built,
            newest=newest,
        )

    # ---- facts ---------------------------------------------------------------------------------

    def _plan_facts(self, table: str, surrogate: str) -> None:
        """Record the files that will hold the keys above the ledger: chunks of ROWS_PER_FILE."""
        self.conn.run("start transaction")
        try:
            recorded = self.conn.run(
                "select last_key from ops.publish_ledger where table_name = :t for update",
                t=table,
            )
            last = int(recorded[0][0]) if recorded else 0
            key = quote_ident(surrogate)
            chunks = self.conn.run(
                f"select min({key}), max({key}), count(*) from {qualified(MARTS, table)} "  # noqa: S608 - identifiers quoted
                f"where {key} > :last group by ({key} - :last - 1) / :size order by 1",
                last=last,
                size=ROWS_PER_FILE,
            )
            for first, final, rows in chunks:
                self.conn.run(
                    "insert into ops.publish_files (object_key, table_name, kind, first_key,"
                    " last_key, rows, status, run_id) values (:key, :t, 'fact', :first, :last,"
                    " :rows, 'pending', :run_id) on conflict (object_key) do nothing",
                    key=f"marts/{table}/{self.day:%Y/%m/%d}/{first:010d}-{final:010d}.parquet",
                    t=table,
                    first=first,
                    last=final,
                    rows=rows,
                    run_id=self.run_id,
                )
            self.conn.run("commit")
        except BaseException:
            self.conn.run("rollback")
            raise

    def _finish_facts(
        self, table: str, surrogate: str, columns: Sequence[pg_arrow.Column]
    ) -> list[PublishedFile]:
        pending = self.conn.run(
            "select object_key, first_key, last_key, rows from ops.publish_files"
            " where table_name = :t and kind = 'fact' and status = 'pending' order by first_key",
            t=table,
        )
        published = []
        for object_key, first, last, rows in pending:
            key = quote_ident(surrogate)
            body = pg_arrow.read_table(
                self.conn,
                MARTS,
                table,
                columns,
                where=f"t.{key} between {int(first)} and {int(last)}",
                order_by=f"t.{key}",
            )
            if body.num_rows != rows:
                raise PublishError(
                    f"{MARTS}.{table} keys {first}..{last} held {rows} rows when planned and "
                    f"{body.num_rows} now: surrogate keys must never be re-assigned"
                )
            published.append(self._upload(table, object_key, body))
            self._transaction(
                (
                    "update ops.publish_files set status = 'done', published_at = now()"
                    " where object_key = :key",
                    {"key": object_key},
                ),
                (
                    "insert into ops.publish_ledger (table_name, last_key, published_at)"
                    " values (:t, :last, now()) on conflict (table_name) do update set"
                    " last_key = greatest(ops.publish_ledger.last_key, excluded.last_key),"
                    " published_at = excluded.published_at",
                    {"t": table, "last": last},
                ),
            )
        return published

    # ---- dimensions ----------------------------------------------------------------------------

    def _changed_members(
        self,
        table: str,
        member_key: str,
        columns: Sequence[pg_arrow.Column],
        after_version: int | None = None,
    ) -> pa.Table:
        """Mart rows whose hash differs from the published one, with `_member_key`, `_row_hash`.
        `after_version`: only members with a version above it (MEMBER_VERSIONS), found by the
        versions model's indexes instead of hashing the whole dimension."""
        extra = [
            pg_arrow.Column("_member_key", "text", False),
            pg_arrow.Column("_row_hash", "text", False),
        ]
        key = quote_ident(member_key)
        only = (
            f" where m.{key} in (select v.{key} from"  # noqa: S608 - quoted; an int (COPY binds nothing)
            f" {qualified(VERSIONS_SCHEMA, MEMBER_VERSIONS[table])} v"
            f" where v.version_id > {int(after_version)})"
            if after_version is not None
            else ""
        )
        inner = (
            f"select m.*, cast(m.{key} as text) as _member_key,"  # noqa: S608 - identifiers quoted
            f" md5(cast(m as text)) as _row_hash from {qualified(MARTS, table)} m{only}"
        )
        query = (
            f"select {pg_arrow.select_list([*columns, *extra])} from ({inner}) t"  # noqa: S608 - identifiers quoted
            " left join ops.publish_dim_state s"
            f" on s.table_name = {_literal(table)} and s.member_key = t._member_key"
            " where s.row_hash is distinct from t._row_hash order by t._member_key"
        )
        schema = pg_arrow.schema_of([*columns, *extra])
        return pa.Table.from_batches(
            list(pg_arrow.stream_query(self.conn, query, schema)), schema=schema
        )

    def _settle_dimension(self, table: str) -> None:
        """A pending dim file left by a crash: finalise it if the upload happened, else forget it
        (its members are still different from the published state, so they are planned again)."""
        pending = self.conn.run(
            "select object_key from ops.publish_files"
            " where table_name = :t and kind = 'dim' and status = 'pending'",
            t=table,
        )
        for (object_key,) in pending:
            if self._exists(object_key):
                self.log.info("finishing a publish that crashed", table=table, key=object_key)
                self._finalise_dimension(table, object_key)
            else:
                self.conn.run("delete from ops.publish_files where object_key = :k", k=object_key)

    def _finalise_dimension(self, table: str, object_key: str) -> None:
        self._transaction(
            (
                "insert into ops.publish_dim_state (table_name, member_key, row_hash, published_at)"
                " select :t, member_key, row_hash, now() from ops.publish_dim_pending"
                " where object_key = :key on conflict (table_name, member_key) do update set"
                " row_hash = excluded.row_hash, published_at = excluded.published_at",
                {"t": table, "key": object_key},
            ),
            ("delete from ops.publish_dim_pending where object_key = :key", {"key": object_key}),
            (
                "update ops.publish_files set status = 'done', published_at = now()"
                " where object_key = :key",
                {"key": object_key},
            ),
        )

    # ---- shared --------------------------------------------------------------------------------

    def _upload(self, table: str, key: str, body: pa.Table) -> PublishedFile:
        buffer = io.BytesIO()
        pq.write_table(body, buffer, compression="snappy")
        bucket = self.settings.processed_bucket
        with logs.Timer() as timer:
            written = put_once(self.s3, bucket, key, buffer.getvalue(), PARQUET_TYPE, self.run_id)
            self._register(table, body.schema, _day_of(key))
        file = PublishedFile(table, key, body.num_rows, already_there=not written)
        self.log.info(
            "mart file published",
            table=table,
            key=key,
            rows=body.num_rows,
            bytes=buffer.tell(),
            duration_s=timer.seconds,
            already_there=file.already_there,
        )
        if self.after_upload:
            self.after_upload(file)
        return file

    def _register(self, table: str, schema: pa.Schema, day: date) -> None:
        """The Glue table and the day's partition, unless this step registered that day under
        this schema already (a Glue round of four calls per file is most of a small publish).
        Recorded after Glue said yes: a crash in between only registers it again."""
        schema_hash = hashlib.sha256(str(schema).encode()).hexdigest()
        done = self.conn.run(
            "select 1 from ops.publish_glue"
            " where table_name = :t and published_on = :day and schema_hash = :h",
            t=table,
            day=day,
            h=schema_hash,
        )
        if done:
            return
        glue.register(self.settings, table, schema, day)
        self.conn.run(
            "insert into ops.publish_glue (table_name, published_on, schema_hash, registered_at)"
            " values (:t, :day, :h, clock_timestamp()) on conflict (table_name, published_on)"
            " do update set schema_hash = excluded.schema_hash,"
            " registered_at = excluded.registered_at",
            t=table,
            day=day,
            h=schema_hash,
        )

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.settings.processed_bucket, Key=key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _transaction(self, *statements: tuple[str, Mapping[str, Any]]) -> None:
        self.conn.run("start transaction")
        try:
            for sql, params in statements:
                self.conn.run(sql, **params)
            self.conn.run("commit")
        except BaseException:
            self.conn.run("rollback")
            raise


def _day_of(key: str) -> date:
    """The date folder of `marts/<table>/<yyyy>/<mm>/<dd>/<file>`."""
    year, month, day = key.split("/")[2:5]
    return date(int(year), int(month), int(day))


def _literal(text: str) -> str:
    """A SQL string literal, for the few statements (COPY) that cannot take bound parameters."""
    return "'" + text.replace("'", "''") + "'"
