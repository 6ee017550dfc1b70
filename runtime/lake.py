"""The lake contract: where the ingestion bucket keeps what, what a manifest says, how a run
commits. The extract writes through this module; the loader and `totes status` read through it.

```
totesys/<table>/<yyyy>/<mm>/<dd>/<run_id>-<part:05d>.parquet   data files, never overwritten
_carry/<table>/<run_id>.parquet                                 versions shipped at/above high
_manifests/<seq:010d>.json                                      the commit record, written last
_skipped/<seq:010d>.json                                        the operator skipped that seq
_milestones/<step>/<seq:010d>                                   seq (a multiple of step) committed
_state/<table>/<run_id>-index.parquet                           per key range: rows, key/row hashes
_state/<table>/<run_id>-pages.parquet                           the ranges' keys, updated, hash
_deletions/<table>/<run_id>.parquet                             keys gone from the source
_allow_deletes/<base_seq:010d>/<table>.json                     the deletion guard let through once
```

A run is committed when its manifest exists. It is written with `IfNoneMatch="*"`: of two runs
that read the same latest seq, exactly one creates seq + 1; the other learns it lost and has
committed nothing (its data files are never read). The zero padding makes S3's lexicographic
listing the same as seq order, so listing after a seq yields exactly the newer manifests; a
run's listing starts after a seq it knows is committed, never at the first manifest: the
loader's at its ledger's last seq, the extract's at the newest milestone (a hint written after
every thousandth commit, never a commit itself), so neither grows with the lake's age.

A skip marker says the loader will never load that manifest (`totes load --skip`): the loader
writes it, also with `IfNoneMatch="*"`, before its ledger entry, and the extract, which has no
warehouse, reads it so that it never takes a watermark or carry from a skipped manifest and
re-extracts the skipped window. A manifest records in `skipped_through` the newest skip its
extract had seen: a skip above it has not been re-covered yet.

Reconciliation (ingest/reconcile.py) finds deleted keys and rows changed without `last_updated`
by comparing per-key-range summaries of the source with the table's *state* in the lake; each
table entry names the state its run left (`reconcile.state`, possibly an older run's, when
nothing changed) and the deletions it found (`reconcile.deletions`). Being in the manifest, a
deletion is committed exactly when the run is. An allow marker lets the one run starting from
manifest `base_seq` record more deletions of `table` than the guard allows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime.pg_types import Column

SOURCE = "totesys"
DATA_PREFIX = f"{SOURCE}/"
CARRY_PREFIX = "_carry/"
MANIFEST_PREFIX = "_manifests/"
SKIPPED_PREFIX = "_skipped/"
STATE_PREFIX = "_state/"
DELETIONS_PREFIX = "_deletions/"
ALLOW_DELETES_PREFIX = "_allow_deletes/"
FORMAT = "totes-manifest/1"
SKIP_FORMAT = "totes-skip/1"
ALLOW_DELETES_FORMAT = "totes-allow-deletes/1"
_MANIFEST_KEY = re.compile(r"^_manifests/(\d{10})\.json$")
_SKIPPED_KEY = re.compile(r"^_skipped/(\d{10})\.json$")


class MalformedManifest(ValueError):
    """A manifest that is not valid `totes-manifest/1`; the message names its key."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


# ---- keys ---------------------------------------------------------------------------------------


def part_key(table: str, run_id: str, day: datetime, part: int) -> str:
    return f"{DATA_PREFIX}{table}/{day:%Y/%m/%d}/{run_id}-{part:05d}.parquet"


def carry_key(table: str, run_id: str) -> str:
    return f"{CARRY_PREFIX}{table}/{run_id}.parquet"


def state_key(table: str, run_id: str, kind: str) -> str:
    """`kind` is "index" (one row per key range) or "pages" (the ranges' rows)."""
    return f"{STATE_PREFIX}{table}/{run_id}-{kind}.parquet"


def deletions_key(table: str, run_id: str) -> str:
    return f"{DELETIONS_PREFIX}{table}/{run_id}.parquet"


def allow_deletes_key(base_seq: int, table: str) -> str:
    return f"{ALLOW_DELETES_PREFIX}{base_seq:010d}/{table}.json"


def manifest_key(seq: int) -> str:
    return f"{MANIFEST_PREFIX}{seq:010d}.json"


def skipped_key(seq: int) -> str:
    return f"{SKIPPED_PREFIX}{seq:010d}.json"


def seq_of(key: str) -> int | None:
    """The seq a manifest key names, or None for anything else under the prefix."""
    match = _MANIFEST_KEY.match(key)
    return int(match.group(1)) if match else None


# ---- the manifest -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataFile:
    """One Parquet part of a table's extract."""

    key: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class CarryFile:
    """The (primary key, last_updated) of versions shipped at or above the watermark's high."""

    key: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class Reconciliation:
    """What a run's reconciliation of one table found and left (docs/CONTRACTS.md).

    `state` names the key-range index (rows = ranges) the next run compares with; an idle run
    names the same index as its base. `fingerprint` identifies what the row hashes cover (the
    columns): when it changes, content is re-baselined. `source_rows`: the table's rows in this
    run's snapshot. `deletions` (or None) lists the `deleted` keys, `silent` counts the versions
    in the entry's files shipped because their content changed without `last_updated` moving.
    `content_checked`: the first and last key range whose content this run compared (None:
    none)."""

    state: CarryFile
    fingerprint: str
    source_rows: int
    deleted: int = 0
    deletions: CarryFile | None = None
    silent: int = 0
    content_checked: tuple[int, int] | None = None
    allowed_by: str | None = None  # the allow marker that let a refused deletion through
    source_mark: str = ""  # what every DELETE moves in the source (ingest/reconcile.py)


@dataclass(frozen=True)
class TableEntry:
    table: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    watermark_low: str | None  # None: the table's first extract (every row)
    watermark_high: str | None
    rows: int
    files: tuple[DataFile, ...]
    carry: CarryFile | None = None
    reconcile: Reconciliation | None = None  # None: not reconciled (an older manifest)


@dataclass(frozen=True)
class Manifest:
    seq: int
    run_id: str
    created_at: str  # "YYYY-MM-DDTHH:MM:SS.mmmZ"
    source: str
    tables: tuple[TableEntry, ...]
    skipped_through: int | None = None  # the newest skip marker its extract had seen

    @property
    def key(self) -> str:
        return manifest_key(self.seq)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def table(self, name: str) -> TableEntry | None:
        return next((t for t in self.tables if t.table == name), None)

    def to_json(self) -> bytes:
        """The manifest's bytes in S3: `indent=1`, keys in this order (docs/CONTRACTS.md)."""
        doc = {
            "format": FORMAT,
            "seq": self.seq,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "source": self.source,
            "tables": [_table_doc(t) for t in self.tables],
        }
        if self.skipped_through is not None:  # absent until the first skip: older bytes stay
            doc["skipped_through"] = self.skipped_through
        return json.dumps(doc, indent=1).encode()


def new_manifest(
    seq: int,
    run_id: str,
    tables: list[TableEntry],
    *,
    now: datetime | None = None,
    skipped_through: int | None = None,
) -> Manifest:
    created_at = _timestamp(now or datetime.now(UTC))
    return Manifest(seq, run_id, created_at, SOURCE, tuple(tables), skipped_through)


def _timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def parse_manifest(key: str, body: bytes) -> Manifest:
    """The manifest stored at `key`; MalformedManifest when it does not follow the format."""
    try:
        doc = json.loads(body)
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
        manifest = Manifest(
            seq=int(doc["seq"]),
            run_id=str(doc["run_id"]),
            created_at=str(doc.get("created_at", "")),
            source=str(doc.get("source", "")),
            tables=tuple(_table(t) for t in doc["tables"]),
            skipped_through=None
            if doc.get("skipped_through") is None
            else int(doc["skipped_through"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise MalformedManifest(f"manifest {key} is malformed: {err!r}", key) from err
    if seq_of(key) not in (None, manifest.seq):
        raise MalformedManifest(f"manifest {key} says seq {manifest.seq}", key)
    return manifest


def _table_doc(entry: TableEntry) -> dict[str, Any]:
    carry = entry.carry
    doc: dict[str, Any] = {
        "table": entry.table,
        "primary_key": list(entry.primary_key),
        "columns": [
            {
                "name": c.name,
                "pg_type": c.pg_type,
                "arrow_type": c.arrow_type,
                "nullable": c.nullable,
            }
            for c in entry.columns
        ],
        "watermark": {"low": entry.watermark_low, "high": entry.watermark_high},
        "rows": entry.rows,
        "files": [
            {"key": f.key, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256}
            for f in entry.files
        ],
        "carry": _ref_doc(carry),
    }
    if entry.reconcile is not None:  # absent from unreconciled entries: older bytes stay
        found = entry.reconcile
        doc["reconcile"] = {
            "state": _ref_doc(found.state),
            "fingerprint": found.fingerprint,
            "source_rows": found.source_rows,
            "deleted": found.deleted,
            "deletions": _ref_doc(found.deletions),
            "silent": found.silent,
            "content_checked": None
            if found.content_checked is None
            else list(found.content_checked),
            "allowed_by": found.allowed_by,
            "source_mark": found.source_mark,
        }
    return doc


def _ref_doc(ref: CarryFile | None) -> dict[str, Any] | None:
    return None if ref is None else {"key": ref.key, "rows": ref.rows, "sha256": ref.sha256}


def _ref(doc: dict[str, Any] | None) -> CarryFile | None:
    if not doc:
        return None
    return CarryFile(str(doc["key"]), int(doc["rows"]), str(doc["sha256"]).lower())


def _reconciliation(doc: dict[str, Any] | None) -> Reconciliation | None:
    if not doc:
        return None
    state = _ref(doc["state"])
    if state is None:
        raise ValueError("reconcile names no state")
    checked = doc.get("content_checked")
    found = Reconciliation(
        state=state,
        fingerprint=str(doc["fingerprint"]),
        source_rows=int(doc["source_rows"]),
        deleted=int(doc.get("deleted", 0)),
        deletions=_ref(doc.get("deletions")),
        silent=int(doc.get("silent", 0)),
        content_checked=None if not checked else (int(checked[0]), int(checked[1])),
        allowed_by=doc.get("allowed_by"),
        source_mark=str(doc.get("source_mark") or ""),
    )
    if (found.deletions.rows if found.deletions else 0) != found.deleted:
        raise ValueError(f"deleted {found.deleted} != rows of its deletions file")
    return found


def _table(doc: dict[str, Any]) -> TableEntry:
    watermark = doc.get("watermark") or {}
    files = tuple(
        DataFile(str(f["key"]), int(f["rows"]), int(f["bytes"]), str(f["sha256"]).lower())
        for f in doc["files"]
    )
    carry = doc.get("carry")  # absent from manifests written before carries existed
    # `reconcile` is absent from manifests written before reconciliation existed
    entry = TableEntry(
        table=str(doc["table"]),
        primary_key=tuple(str(c) for c in doc.get("primary_key", ())),
        columns=tuple(_column(c) for c in doc["columns"]),
        watermark_low=watermark.get("low"),
        watermark_high=watermark.get("high"),
        rows=int(doc["rows"]),
        files=files,
        carry=_ref(carry),
        reconcile=_reconciliation(doc.get("reconcile")),
    )
    if sum(f.rows for f in files) != entry.rows:
        raise ValueError(f"table {entry.table}: rows {entry.rows} != sum of its files' rows")
    if not entry.columns:
        raise ValueError(f"table {entry.table} lists no columns")
    return entry


def _column(doc: dict[str, Any]) -> Column:
    arrow = str(doc["arrow_type"])
    if not arrow:  # Column would derive one: a manifest says what its files hold, or nothing
        raise ValueError(f"column {doc['name']!r} has an empty arrow_type")
    return Column(str(doc["name"]), str(doc["pg_type"]), bool(doc["nullable"]), arrow)


# ---- reading and committing ---------------------------------------------------------------------


def read_manifest(s3: Any, bucket: str, key: str) -> Manifest:
    """Raises botocore's errors when it cannot be read, MalformedManifest when it is not one."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return parse_manifest(key, body)


def committed_after(s3: Any, bucket: str, after_seq: int | None) -> list[tuple[int, str]]:
    """(seq, key) of every committed manifest with a seq above `after_seq`, oldest first.
    Lists from `after_seq` on (`StartAfter`): the cost is the manifests newer than it."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": MANIFEST_PREFIX}
    if after_seq is not None:
        kwargs["StartAfter"] = manifest_key(after_seq)
    found: list[tuple[int, str]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        for obj in page.get("Contents", []):
            seq = seq_of(obj["Key"])
            if seq is not None and (after_seq is None or seq > after_seq):
                found.append((seq, obj["Key"]))
    return sorted(found)


def latest_seq(s3: Any, bucket: str, *, after: int | None = None) -> int | None:
    """The highest committed seq, None before the first run. `after`, a seq known to be
    committed, lists only from there on (and is the answer when nothing is newer).

    The listing starts at the newest milestone (see `milestone_floor`), so it reads at most
    a page or so of manifests, however many the lake holds."""
    known = [seq for seq in (after, milestone_floor(s3, bucket)) if seq is not None]
    start = max(known) if known else None
    found = committed_after(s3, bucket, start)
    return found[-1][0] if found else start


def latest_manifest(s3: Any, bucket: str, *, after: int | None = None) -> Manifest | None:
    """The committed manifest with the highest seq, or None before the first run."""
    seq = latest_seq(s3, bucket, after=after)
    return None if seq is None else read_manifest(s3, bucket, manifest_key(seq))


# ---- milestones: where the listing of the newest manifests starts ------------------------------
#
# `_milestones/<step>/<seq:010d>` exists only once manifest `seq` (a multiple of `step`) is
# committed: the run that committed it writes it right after, also with `IfNoneMatch="*"`. So
# the newest milestone is a committed seq the latest cannot be below, and the listing for the
# latest starts there: one short listing per step (coarsest first, each starting at the floor
# the coarser one gave) and then at most `MILESTONE_STEPS[-1]` manifests, for 10 or for 10
# million manifests alike. A milestone is only ever a lower bound: the manifest's conditional
# put stays the one commit point, and a milestone lost to a crash between the two puts only
# makes the listings start lower (correct, one page longer) until the next milestone.

MILESTONE_PREFIX = "_milestones/"
# Coarsest first. 1,000 keys is one S3 listing page; seqs reach 10**9 after 9,500 years of
# 5-minute cycles, so two steps keep every listing to about a page for the lake's lifetime.
MILESTONE_STEPS = (1_000_000, 1_000)


def milestone_key(step: int, seq: int) -> str:
    return f"{MILESTONE_PREFIX}{step}/{seq:010d}"


def milestone_floor(s3: Any, bucket: str) -> int | None:
    """The highest seq a milestone vouches for (committed), or None when there is none."""
    floor: int | None = None
    for step in MILESTONE_STEPS:
        prefix = f"{MILESTONE_PREFIX}{step}/"
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if floor is not None:
            kwargs["StartAfter"] = milestone_key(step, floor)
        for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
            for obj in page.get("Contents", []):
                tail = obj["Key"][len(prefix) :]
                if tail.isdigit() and len(tail) == 10:
                    floor = max(floor or 0, int(tail))
    return floor


def _write_milestones(s3: Any, bucket: str, seq: int) -> None:
    """After manifest `seq` committed: its milestones, if it is a multiple of a step. Only a
    hint: a failure here leaves the commit committed and the listings one page longer."""
    for step in MILESTONE_STEPS:
        if seq % step:
            continue
        try:
            s3.put_object(
                Bucket=bucket,
                Key=milestone_key(step, seq),
                Body=json.dumps({"seq": seq, "manifest_key": manifest_key(seq)}).encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except (ClientError, BotoCoreError):  # written already, or S3 refused a hint
            continue


def commit_manifest(s3: Any, bucket: str, manifest: Manifest) -> bool:
    """Create the manifest's key if nobody has; False when another run committed that seq."""
    try:
        s3.put_object(
            Bucket=bucket,
            Key=manifest.key,
            Body=manifest.to_json(),
            ContentType="application/json",
            IfNoneMatch="*",
        )
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code")
        # 409 ConditionalRequestConflict: a concurrent conditional write to the same key.
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    _write_milestones(s3, bucket, manifest.seq)
    return True


# ---- skip markers -------------------------------------------------------------------------------


def mark_skipped(
    s3: Any, bucket: str, seq: int, *, reason: str, run_id: str, now: datetime | None = None
) -> bool:
    """Write manifest `seq`'s skip marker; False when it already exists (a retried skip).
    A marker is never removed: a skip cannot be undone, only re-covered by the extract."""
    doc = {
        "format": SKIP_FORMAT,
        "seq": seq,
        "manifest_key": manifest_key(seq),
        "skipped_at": _timestamp(now or datetime.now(UTC)),
        "run_id": run_id,
        "reason": reason,
    }
    try:
        s3.put_object(
            Bucket=bucket,
            Key=skipped_key(seq),
            Body=json.dumps(doc, indent=1).encode(),
            ContentType="application/json",
            IfNoneMatch="*",
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in (
            "PreconditionFailed",
            "ConditionalRequestConflict",
        ):
            return False
        raise
    return True


def skipped_seqs(s3: Any, bucket: str) -> set[int]:
    """Every seq an operator has skipped (skips are rare: one listing page in practice)."""
    found: set[int] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=SKIPPED_PREFIX):
        for obj in page.get("Contents", []):
            match = _SKIPPED_KEY.match(obj["Key"])
            if match:
                found.add(int(match.group(1)))
    return found


# ---- allow markers (the deletion guard's override) ----------------------------------------------


def mark_allow_deletes(
    s3: Any,
    bucket: str,
    base_seq: int,
    table: str,
    *,
    reason: str,
    run_id: str,
    now: datetime | None = None,
) -> bool:
    """Let the run that starts from manifest `base_seq` record `table`'s deletions past the
    guard; False when the marker exists already. Never removed: once that run commits, no
    later run starts from `base_seq`, so the marker is used at most once."""
    doc = {
        "format": ALLOW_DELETES_FORMAT,
        "base_seq": base_seq,
        "table": table,
        "allowed_at": _timestamp(now or datetime.now(UTC)),
        "run_id": run_id,
        "reason": reason,
    }
    try:
        s3.put_object(
            Bucket=bucket,
            Key=allow_deletes_key(base_seq, table),
            Body=json.dumps(doc, indent=1).encode(),
            ContentType="application/json",
            IfNoneMatch="*",
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in (
            "PreconditionFailed",
            "ConditionalRequestConflict",
        ):
            return False
        raise
    return True


def allow_deletes_marker(s3: Any, bucket: str, base_seq: int, table: str) -> str | None:
    """The key of the allow marker for (`base_seq`, `table`), or None when there is none."""
    key = allow_deletes_key(base_seq, table)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return key
