"""`publish.docs`: the dbt docs site under a prefix of its own per run, every object created
once with its content type, from the local cycle or from CodeBuild's `python -m publish.docs`."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from publish import docs
from publish.objects import PublishError

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 3, 4)


def versioned(isolated) -> None:
    """Turn on bucket versioning, so any overwrite would leave a second version behind."""
    isolated.s3().put_bucket_versioning(
        Bucket=isolated.settings.processed_bucket,
        VersioningConfiguration={"Status": "Enabled"},
    )


def object_versions(isolated) -> Counter:
    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    versions: Counter = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            versions[version["Key"]] += 1
        for marker in page.get("DeleteMarkers", []):
            versions[marker["Key"]] += 100  # a delete is as bad as an overwrite
    return versions


def docs_site(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names or docs.DOCS_FILES:
        (folder / name).write_text(f"<{name}>")
    return folder


def test_the_docs_site_goes_to_a_new_prefix_and_is_never_overwritten(isolated, tmp_path):
    versioned(isolated)
    target = docs_site(tmp_path / "target")
    first = docs.publish_docs(isolated.settings, target, "run-1", today=DAY)
    again = docs.publish_docs(isolated.settings, target, "run-1", today=DAY)
    second = docs.publish_docs(isolated.settings, target, "run-2", today=DAY)

    assert "docs/2026/03/04/run-1/index.html" in first
    assert again == first
    assert set(second).isdisjoint(first)
    assert set(object_versions(isolated).values()) == {1}


def test_each_file_has_its_content_type_and_the_static_page_goes_too(isolated, tmp_path):
    target = docs_site(tmp_path / "target", *docs.DOCS_FILES, *docs.OPTIONAL_FILES, "run.log")
    keys = docs.publish_docs(isolated.settings, target, "run-1", prefix="site/", today=DAY)

    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    stored = {k.rsplit("/", 1)[1]: s3.head_object(Bucket=bucket, Key=k) for k in keys}
    assert {n: h["ContentType"] for n, h in stored.items()} == {
        "index.html": "text/html; charset=utf-8",
        "static_index.html": "text/html; charset=utf-8",
        "manifest.json": "application/json",
        "catalog.json": "application/json",
    }, "only the site's files, each with its type"
    assert {h["Metadata"]["run-id"] for h in stored.values()} == {"run-1"}
    assert all(k.startswith("site/2026/03/04/run-1/") for k in keys)


def test_an_incomplete_site_or_no_bucket_is_refused_before_anything_is_written(isolated, tmp_path):
    partial = docs_site(tmp_path / "partial", "index.html")
    with pytest.raises(PublishError, match=r"missing \['manifest.json', 'catalog.json'\]"):
        docs.publish_docs(isolated.settings, partial, "run-1")
    with pytest.raises(PublishError, match="PROCESSED_BUCKET"):
        docs.publish_docs(
            isolated.settings.with_(processed_bucket=""), docs_site(tmp_path / "full"), "run-1"
        )
    listed = isolated.s3().list_objects_v2(Bucket=isolated.settings.processed_bucket)
    assert listed["KeyCount"] == 0


def test_the_command_line_takes_codebuilds_environment_only(isolated, tmp_path):
    """What run_dbt.sh's publish-docs runs: no ingestion bucket, no warehouse, the run named
    by the state machine's execution ARN."""
    target = docs_site(tmp_path / "target")
    env = {
        k: v
        for k, v in isolated.env().items()
        if k not in {"INGESTION_BUCKET", "WAREHOUSE_DSN", "TOTESYS_DSN"}
    }
    env |= {
        "DOCS_PREFIX": "dbt-docs/",
        "EXECUTION_ID": "arn:aws:states:eu-west-2:123456789012:execution:totes:run 7",
    }
    command = [sys.executable, "-m", "publish.docs", "--target-dir", str(target)]
    before = datetime.now(UTC)
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    days = {f"{t:%Y/%m/%d}" for t in (before, datetime.now(UTC))}  # a run across midnight
    assert done.returncode == 0, done.stderr
    assert '"message": "docs published"' in done.stdout

    listed = isolated.s3().list_objects_v2(Bucket=isolated.settings.processed_bucket)
    keys = sorted(o["Key"] for o in listed["Contents"])
    assert any(keys == sorted(f"dbt-docs/{d}/run-7/{n}" for n in docs.DOCS_FILES) for d in days)

    (target / "catalog.json").unlink()
    refused = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 1
    assert "catalog.json" in refused.stderr


def test_run_ids_from_the_environment_are_safe_object_key_parts():
    execution = "arn:aws:states:eu-west-2:1:execution:totes-dev:0b9c/7 x"
    assert docs.run_id_from_env({"EXECUTION_ID": execution}) == "0b9c-7-x"
    assert docs.run_id_from_env({"CODEBUILD_BUILD_ID": "totes-dbt:1a2b-3c"}) == "1a2b-3c"
    assert docs.run_id_from_env({}).startswith("manual-")


def test_publishing_docs_does_not_import_the_parquet_machinery():
    """CodeBuild installs only dbt, boto3 and pg8000: publish.docs must need nothing more."""
    heavy = ("pyarrow", "numpy", "pandas", "awswrangler")
    check = (
        "import sys, publish.docs; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
