"""The CodeBuild job's commands, run locally against the local stack: the buildspec's phases
call infra/aws/codebuild/run_dbt.sh, so running that script here tests the job itself."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pytest
import yaml

from infra.local.totesys.seed import seed
from ingest.extract import run_extract
from lambda_loader.load import run_load

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "aws" / "codebuild" / "run_dbt.sh"

pytestmark = pytest.mark.slow


def buildspec_phases() -> list[str]:
    """The run_dbt.sh phases the buildspec calls after install, in order."""
    spec = yaml.safe_load((ROOT / "infra" / "aws" / "buildspec.yml").read_text())
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    phases = [c.split("run_dbt.sh", 1)[1].strip() for c in commands if "run_dbt.sh" in c]
    return [p for p in phases if p != "install"]  # install is pip, already done by `make`


def test_the_buildspec_commands_build_test_and_publish_against_the_local_stack(isolated, tmp_path):
    conn = isolated.totesys()
    seed(conn, scale=0.02, end=date(2024, 11, 1))
    conn.close()
    run_extract(isolated.settings)
    run_load(isolated.settings)
    env = {
        **isolated.env(),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        "EXECUTION_ID": "local-test",
        "TOTES_STAGE": "test",
    }

    phases = buildspec_phases()
    assert phases == ["debug", "build", "freshness", "docs", "publish-docs"]
    for phase in phases:
        done = subprocess.run(
            ["bash", str(SCRIPT), phase], env=env, cwd=ROOT, capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{phase}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    warehouse = isolated.warehouse()
    facts = warehouse.run("select count(*) from marts.fact_sales_order")[0][0]
    warehouse.close()
    assert facts > 0
    s3 = isolated.s3()
    docs = s3.list_objects_v2(Bucket=isolated.settings.processed_bucket, Prefix="docs/")
    keys = [o["Key"] for o in docs.get("Contents", [])]
    assert any(k.endswith("/local-test/index.html") for k in keys), keys
    metrics = isolated.settings.client("cloudwatch").list_metrics(Namespace="Totes/Pipeline")
    assert "FreshnessLagSeconds" in {m["MetricName"] for m in metrics["Metrics"]}
