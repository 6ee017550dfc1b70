"""The dbt docs site in the processed bucket: `<prefix><yyyy>/<mm>/<dd>/<run_id>/<file>`.

The lake is immutable, so every build's site gets a prefix of its own (the newest one is the
current site) and each object is created, never overwritten: publishing the same run again finds
its objects already there and writes nothing. `dbt docs generate` must have written DOCS_FILES
into the target folder; `static_index.html` (written by `--static`: the whole site in one page)
goes too when present.

One function for both callers: the local cycle's publish step, and the CodeBuild job
(`infra/aws/codebuild/run_dbt.sh publish-docs`), which runs

    python -m publish.docs --target-dir dbt_warehouse/target [--run-id ID]

with `PROCESSED_BUCKET`, optional `DOCS_PREFIX` (default `docs/`) and `AWS_ENDPOINT_URL`, and
`EXECUTION_ID` or `CODEBUILD_BUILD_ID` naming the run when `--run-id` is not given.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from publish.objects import PublishError, put_once
from runtime import logs
from runtime.config import Settings

DOCS_FILES = ("index.html", "manifest.json", "catalog.json")  # what `dbt docs generate` writes
OPTIONAL_FILES = ("static_index.html",)
DOCS_PREFIX = "docs/"
CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
}


def publish_docs(
    settings: Settings,
    target_dir: Path,
    run_id: str,
    *,
    prefix: str = DOCS_PREFIX,
    today: date | None = None,
) -> list[str]:
    """Upload the docs site in `target_dir` under `<prefix><yyyy>/<mm>/<dd>/<run_id>/`; returns
    the object keys (including any a previous attempt of this run had already written)."""
    if not settings.processed_bucket:
        raise PublishError("PROCESSED_BUCKET is not set: nowhere to publish the docs")
    missing = [name for name in DOCS_FILES if not (target_dir / name).is_file()]
    if missing:
        raise PublishError(
            f"dbt docs are missing {missing} in {target_dir}: run `dbt docs generate` first"
        )
    day = today or datetime.now(UTC).date()
    folder = f"{prefix}{day:%Y/%m/%d}/{run_id}/"
    s3 = settings.client("s3")
    keys, written = [], 0
    for name in (*DOCS_FILES, *(n for n in OPTIONAL_FILES if (target_dir / n).is_file())):
        content_type = CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
        body = (target_dir / name).read_bytes()
        written += put_once(
            s3, settings.processed_bucket, folder + name, body, content_type, run_id
        )
        keys.append(folder + name)
    logs.run_logger("publish.docs", run_id).info(
        "docs published",
        bucket=settings.processed_bucket,
        prefix=folder,
        files=len(keys),
        already_there=len(keys) - written,
    )
    return keys


def run_id_from_env(environ: Mapping[str, str]) -> str:
    """The state machine's execution (or the CodeBuild build) as a key-safe run id: the last
    `:` part of the ARN or build id, anything outside `[A-Za-z0-9._-]` turned into `-`."""
    named = environ.get("EXECUTION_ID") or environ.get("CODEBUILD_BUILD_ID")
    if not named:
        return "manual-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return re.sub(r"[^A-Za-z0-9._-]", "-", named.rsplit(":", 1)[-1])


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """`python -m publish.docs --target-dir DIR [--run-id ID]`: the CodeBuild job's upload."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m publish.docs", description=main.__doc__)
    parser.add_argument("--target-dir", type=Path, required=True, help="dbt's target folder")
    parser.add_argument("--run-id", default=None, help="default: from EXECUTION_ID")
    args = parser.parse_args(argv)
    logs.configure()
    # Not Settings.from_env(): the CodeBuild job has no ingestion bucket, and needs none here.
    settings = Settings(
        ingestion_bucket=env.get("INGESTION_BUCKET", ""),
        processed_bucket=env.get("PROCESSED_BUCKET", ""),
        aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or Settings.region,
    )
    try:
        publish_docs(
            settings,
            args.target_dir,
            args.run_id or run_id_from_env(env),
            prefix=env.get("DOCS_PREFIX") or DOCS_PREFIX,
        )
    except PublishError as err:
        print(f"publish.docs: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
