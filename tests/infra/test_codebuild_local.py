"""The CodeBuild job's commands, run locally against the local stack: the buildspec's phases
call infra/aws/codebuild/run_dbt.sh, so running that script here tests the job itself. The docs
upload runs from a copy of exactly what the CodeBuild project's source holds (CODEBUILD_SOURCE),
with only the environment CodeBuild gives it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from infra.aws.compute import stage_codebuild_source
from infra.local.totesys.seed import seed
from ingest.extract import run_extract
from lambda_loader.load import run_load
from publish import docs

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "aws" / "codebuild" / "run_dbt.sh"
# Not on the CodeBuild project: it has the warehouse secret's keys, PROCESSED_BUCKET, the stage
# and EXECUTION_ID only.
NOT_IN_CODEBUILD = ("INGESTION_BUCKET", "WAREHOUSE_DSN", "TOTESYS_DSN", "ALERT_TOPIC_ARN")
# Prints the files of the project's modules that `publish.docs` imports.
IMPORTED_FILES = (
    "import json, sys, publish.docs; "
    "print(json.dumps([m.__file__ for n, m in sys.modules.items()"
    " if n.split('.')[0] in ('publish', 'runtime') and getattr(m, '__file__', None)]))"
)

pytestmark = pytest.mark.slow


def buildspec_phases() -> list[str]:
    """The run_dbt.sh phases the buildspec calls after install, in order."""
    spec = yaml.safe_load((ROOT / "infra" / "aws" / "buildspec.yml").read_text())
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    phases = [c.split("run_dbt.sh", 1)[1].strip() for c in commands if "run_dbt.sh" in c]
    return [p for p in phases if p != "install"]  # install is pip, already done by `make`


def run_phase(script: Path, phase: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["bash", str(script), phase], env=env, cwd=script.parents[3], capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{phase}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_buildspec_commands_build_test_and_publish_against_the_local_stack(isolated, tmp_path):
    conn = isolated.totesys()
    seed(conn, scale=0.02, end=date(2024, 11, 1))
    conn.close()
    run_extract(isolated.settings)
    run_load(isolated.settings)
    s3, bucket = isolated.s3(), isolated.settings.processed_bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    env = {
        **isolated.env(),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        "EXECUTION_ID": "arn:aws:states:eu-west-2:123456789012:execution:totes:local-test",
        "TOTES_STAGE": "test",
    }
    codebuild_env = {k: v for k, v in env.items() if k not in NOT_IN_CODEBUILD}
    codebuild_env["PYTHON"] = sys.executable  # the staged copy has no .venv: CodeBuild's python
    source = Path(stage_codebuild_source(tmp_path / "codebuild-source"))
    staged_script = source / SCRIPT.relative_to(ROOT)

    phases = buildspec_phases()
    assert phases == ["debug", "build", "freshness", "docs", "publish-docs"]
    days = set()
    for phase in phases:
        if phase == "publish-docs":
            days.add(f"{datetime.now(UTC):%Y/%m/%d}")
            published = run_phase(staged_script, phase, codebuild_env)
            days.add(f"{datetime.now(UTC):%Y/%m/%d}")  # a run across midnight
        else:
            run_phase(SCRIPT, phase, env)

    warehouse = isolated.warehouse()
    facts = warehouse.run("select count(*) from marts.fact_sales_order")[0][0]
    warehouse.close()
    assert facts > 0
    site = s3.list_objects_v2(Bucket=bucket, Prefix="docs/")
    keys = [o["Key"] for o in site.get("Contents", [])]
    assert any(k.endswith("/local-test/index.html") for k in keys), keys
    metrics = isolated.settings.client("cloudwatch").list_metrics(Namespace="Totes/Pipeline")
    assert "FreshnessLagSeconds" in {m["MetricName"] for m in metrics["Metrics"]}

    # The whole site (with `docs generate --static`'s page) under the day's folder and the
    # execution's name, each file with its content type.
    prefix = keys[0].rsplit("/", 1)[0] + "/"
    assert prefix in {f"docs/{d}/local-test/" for d in days}
    types = {k[len(prefix) :]: s3.head_object(Bucket=bucket, Key=k)["ContentType"] for k in keys}
    assert types == {
        "index.html": "text/html; charset=utf-8",
        "static_index.html": "text/html; charset=utf-8",
        "manifest.json": "application/json",
        "catalog.json": "application/json",
    }
    assert set(types) == {*docs.DOCS_FILES, *docs.OPTIONAL_FILES}
    logged = [json.loads(line) for line in published.stdout.splitlines() if line.startswith("{")]
    assert any(e.get("message") == "docs published" and e.get("files") == 4 for e in logged)

    # Run again, as a CodeBuild retry of the same execution would: nothing is overwritten.
    run_phase(staged_script, "publish-docs", codebuild_env)
    versions = s3.list_object_versions(Bucket=bucket, Prefix="docs/")["Versions"]
    assert sorted(v["Key"] for v in versions) == sorted(keys), "one version of each object"

    # The staged source ran its own publish.docs: nothing it imports is missing from the copy.
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED_FILES], cwd=source, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    files = json.loads(done.stdout)
    assert files and all(Path(f).is_relative_to(source) for f in files), files
