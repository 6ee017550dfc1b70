"""runtime.lake is the lake contract: its keys, the manifest's bytes and fields, the listing of
committed manifests and the one-winner commit, against the local AWS endpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from runtime import lake
from runtime.pg_types import Column

SALES = lake.TableEntry(
    table="sales_order",
    primary_key=("sales_order_id",),
    columns=(
        Column("sales_order_id", "integer", False),
        Column("unit_price", "numeric(10,2)", False),
        Column("kind", '"PaymentTypeName"', True, "string"),
    ),
    watermark_low=None,
    watermark_high="2026-11-25 22:30:00.000",
    rows=17,
    files=(lake.DataFile("totesys/sales_order/2026/11/25/RUN-00000.parquet", 17, 4821, "ab" * 32),),
    carry=lake.CarryFile("_carry/sales_order/RUN.parquet", 2, "cd" * 32),
)
QUIET = lake.TableEntry(
    "currency",
    ("currency_id",),
    (Column("currency_id", "integer", False),),
    "2026-11-25 22:25:00.000",
    "2026-11-25 22:30:00.000",
    0,
    (),
)
AT = datetime(2026, 11, 25, 22, 30, 4, 512999, tzinfo=UTC)

# What the extract has always written (json.dumps(doc, indent=1)): old manifests stay readable
# and new ones stay byte-for-byte what readers already know.
QUIET_JSON = """{
 "format": "totes-manifest/1",
 "seq": 7,
 "run_id": "RUN",
 "created_at": "2026-11-25T22:30:04.512Z",
 "source": "totesys",
 "tables": [
  {
   "table": "currency",
   "primary_key": [
    "currency_id"
   ],
   "columns": [
    {
     "name": "currency_id",
     "pg_type": "integer",
     "arrow_type": "int32",
     "nullable": false
    }
   ],
   "watermark": {
    "low": "2026-11-25 22:25:00.000",
    "high": "2026-11-25 22:30:00.000"
   },
   "rows": 0,
   "files": [],
   "carry": null
  }
 ]
}"""


def _doc(**changes) -> dict:
    doc = json.loads(lake.new_manifest(1, "RUN", [SALES], now=AT).to_json())
    doc.update(changes)
    return doc


# ---- keys ---------------------------------------------------------------------------------------


def test_keys_follow_the_contract():
    day = datetime(2026, 1, 5, 23, 59)
    assert lake.part_key("sales_order", "RUN", day, 7) == (
        "totesys/sales_order/2026/01/05/RUN-00007.parquet"
    )
    assert lake.carry_key("sales_order", "RUN") == "_carry/sales_order/RUN.parquet"
    assert lake.manifest_key(42) == "_manifests/0000000042.json"
    assert (lake.DATA_PREFIX, lake.MANIFEST_PREFIX, lake.FORMAT) == (
        "totesys/", "_manifests/", "totes-manifest/1",
    )  # fmt: skip


def test_only_zero_padded_manifest_keys_name_a_seq():
    assert lake.seq_of("_manifests/0000000042.json") == 42
    for other in ("_manifests/42.json", "_manifests/notes.txt", "x/_manifests/0000000001.json",
                  "_manifests/0000000001.json.tmp"):  # fmt: skip
        assert lake.seq_of(other) is None


# ---- the manifest's bytes -----------------------------------------------------------------------


def test_a_manifest_is_written_exactly_as_before():
    manifest = lake.new_manifest(7, "RUN", [QUIET], now=AT)
    assert manifest.created_at == "2026-11-25T22:30:04.512Z"  # milliseconds, truncated
    assert manifest.to_json().decode() == QUIET_JSON


def test_a_manifest_round_trips_through_json():
    manifest = lake.new_manifest(3, "RUN", [SALES, QUIET], now=AT)
    parsed = lake.parse_manifest(manifest.key, manifest.to_json())
    assert parsed == manifest
    assert parsed.key == "_manifests/0000000003.json"
    assert parsed.rows == 17
    assert parsed.table("sales_order") == SALES and parsed.table("nope") is None
    assert parsed.table("sales_order").columns[2].arrow_type == "string"  # kept as written


def test_an_old_manifest_without_carry_created_at_or_source_still_loads():
    doc = _doc()
    del doc["created_at"], doc["source"]
    del doc["tables"][0]["carry"]
    parsed = lake.parse_manifest("_manifests/0000000001.json", json.dumps(doc).encode())
    assert parsed.tables[0].carry is None
    assert (parsed.created_at, parsed.source) == ("", "")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "JSONDecodeError"),
        (b"[]", "AttributeError"),
        (json.dumps(_doc(format="totes-manifest/2")).encode(), "format is 'totes-manifest/2'"),
        (json.dumps(_doc(seq="one")).encode(), "invalid literal"),
        (json.dumps({**_doc(), "tables": [{"table": "t"}]}).encode(), "KeyError"),
    ],
)
def test_a_bad_manifest_raises_a_clear_error_naming_its_key(body, why):
    malformed = r"_manifests/0000000001\.json is malformed"
    with pytest.raises(lake.MalformedManifest, match=malformed) as err:
        lake.parse_manifest("_manifests/0000000001.json", body)
    assert why in str(err.value)
    assert err.value.key == "_manifests/0000000001.json"
    assert isinstance(err.value, ValueError)


def test_a_manifest_must_add_up_and_sit_at_its_own_seq():
    doc = _doc()
    doc["tables"][0]["rows"] = 18
    with pytest.raises(lake.MalformedManifest, match="rows 18 != sum of its files' rows"):
        lake.parse_manifest("_manifests/0000000001.json", json.dumps(doc).encode())
    doc = _doc()
    doc["tables"][0]["columns"] = []
    with pytest.raises(lake.MalformedManifest, match="lists no columns"):
        lake.parse_manifest("_manifests/0000000001.json", json.dumps(doc).encode())
    doc = _doc()
    doc["tables"][0]["columns"][0]["arrow_type"] = ""
    with pytest.raises(lake.MalformedManifest, match="empty arrow_type"):
        lake.parse_manifest("_manifests/0000000001.json", json.dumps(doc).encode())
    with pytest.raises(lake.MalformedManifest, match=r"_manifests/0000000002\.json says seq 1"):
        lake.parse_manifest("_manifests/0000000002.json", json.dumps(_doc()).encode())


# ---- listing and committing (moto server) -------------------------------------------------------


@pytest.fixture
def bucket(isolated):
    return isolated.s3(), isolated.settings.ingestion_bucket


def _commit(s3, bucket: str, seq: int, run_id: str = "RUN") -> bool:
    return lake.commit_manifest(s3, bucket, lake.new_manifest(seq, run_id, [QUIET]))


def test_an_empty_lake_has_no_committed_manifest(bucket):
    s3, name = bucket
    assert lake.committed_after(s3, name, None) == []
    assert lake.latest_seq(s3, name) is None
    assert lake.latest_manifest(s3, name) is None


def test_listing_after_a_seq_yields_the_newer_manifests_oldest_first(bucket):
    s3, name = bucket
    for seq in (3, 1, 2, 10):
        assert _commit(s3, name, seq)
    # Neither a stray object under the prefix nor a data file is a manifest.
    s3.put_object(Bucket=name, Key="_manifests/notes.txt", Body=b"not a manifest")
    s3.put_object(Bucket=name, Key="totesys/currency/2026/11/25/RUN-00000.parquet", Body=b"")
    keys = {seq: lake.manifest_key(seq) for seq in (1, 2, 3, 10)}
    assert lake.committed_after(s3, name, None) == sorted(keys.items())
    assert lake.committed_after(s3, name, 2) == [(3, keys[3]), (10, keys[10])]
    assert lake.committed_after(s3, name, 10) == []
    assert lake.latest_seq(s3, name) == 10
    assert lake.latest_seq(s3, name, after=3) == 10
    assert lake.latest_seq(s3, name, after=10) == 10  # nothing newer: the known one
    latest = lake.latest_manifest(s3, name, after=2)
    assert latest is not None and (latest.seq, latest.tables) == (10, (QUIET,))
    assert lake.read_manifest(s3, name, keys[1]).seq == 1


def test_of_two_writers_of_one_seq_only_the_first_commits(bucket):
    s3, name = bucket
    assert _commit(s3, name, 1, "FIRST") is True
    assert _commit(s3, name, 1, "SECOND") is False
    assert lake.read_manifest(s3, name, lake.manifest_key(1)).run_id == "FIRST"
    assert _commit(s3, name, 2, "SECOND") is True


def test_a_missing_manifest_is_a_read_error_not_a_malformed_one(bucket):
    s3, name = bucket
    with pytest.raises(ClientError):
        lake.read_manifest(s3, name, lake.manifest_key(1))


# ---- milestones: the listing of the newest manifests does not grow with the lake's age ---------


def _manifest_listings(s3) -> list[dict]:
    """The parameters of every ListObjectsV2 call this client makes on the manifests."""
    calls: list[dict] = []

    def record(params: dict, **_: object) -> None:
        if params.get("Prefix") == lake.MANIFEST_PREFIX:
            calls.append(dict(params))

    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", record)
    return calls


def test_the_latest_seq_is_listed_from_the_newest_milestone_not_from_the_first_manifest(bucket):
    s3, name = bucket
    for seq in (1, 2, 999, 1000, 1001, 1999, 2000, 2001):
        assert _commit(s3, name, seq)
    milestones = [
        o["Key"] for o in s3.list_objects_v2(Bucket=name, Prefix="_milestones/")["Contents"]
    ]
    assert milestones == [lake.milestone_key(1000, 1000), lake.milestone_key(1000, 2000)]
    assert lake.milestone_floor(s3, name) == 2000

    listings = _manifest_listings(s3)
    assert lake.latest_seq(s3, name) == 2001
    assert [c.get("StartAfter") for c in listings] == [lake.manifest_key(2000)]
    # A known seq above the milestone starts the listing higher still; one below it does not.
    listings.clear()
    assert lake.latest_seq(s3, name, after=2001) == 2001
    assert lake.latest_seq(s3, name, after=5) == 2001
    assert [c.get("StartAfter") for c in listings] == [
        lake.manifest_key(2001),
        lake.manifest_key(2000),
    ]


def test_the_coarser_milestone_narrows_the_finer_listing(bucket):
    s3, name = bucket
    for seq in (3000, 1_000_000, 1_001_000, 1_001_001):
        assert _commit(s3, name, seq)
    assert lake.milestone_floor(s3, name) == 1_001_000
    finer: list[dict] = []

    def record(params: dict, **_: object) -> None:
        if params.get("Prefix") == "_milestones/1000/":
            finer.append(dict(params))

    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", record)
    assert lake.latest_seq(s3, name) == 1_001_001
    # The 1,000-step milestones are listed from the newest 1,000,000-step one: seq 3000's
    # milestone (and every other below 1,000,000) is never read again.
    assert [c.get("StartAfter") for c in finer] == [lake.milestone_key(1000, 1_000_000)]


def test_a_milestone_is_only_a_hint_the_manifests_decide(bucket):
    s3, name = bucket
    assert lake.latest_seq(s3, name) is None  # no milestone, no manifest
    for seq in (999, 1000):
        assert _commit(s3, name, seq)
    # A run that committed 2000 and died before its milestone: the listing starts lower and
    # still finds every newer manifest.
    body = lake.new_manifest(2000, "CRASHED", [QUIET]).to_json()
    s3.put_object(Bucket=name, Key=lake.manifest_key(2000), Body=body, IfNoneMatch="*")
    assert _commit(s3, name, 2001)
    assert lake.milestone_floor(s3, name) == 1000
    assert lake.latest_seq(s3, name) == 2001
    # The loser of a race for a milestone's seq writes nothing: the winner's milestone stands.
    assert _commit(s3, name, 1000, "LOSER") is False
    assert lake.read_manifest(s3, name, lake.manifest_key(1000)).run_id == "RUN"
    [milestone] = s3.list_objects_v2(Bucket=name, Prefix="_milestones/")["Contents"]
    assert milestone["Key"] == lake.milestone_key(1000, 1000)
    assert json.loads(s3.get_object(Bucket=name, Key=milestone["Key"])["Body"].read()) == {
        "seq": 1000,
        "manifest_key": lake.manifest_key(1000),
    }
