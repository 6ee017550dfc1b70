"""What a cycle's build leaves out must not matter: a data test tagged `enforced` (which a cycle's
build does not run, totes/dbt_build.py) repeats a constraint or unique index the database checks
on every insert, so after a build that succeeded it cannot fail. Read from the parsed project:
a tag on a test that no constraint backs fails here, naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from totes import dbt_build

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "dbt_warehouse"
DBT = Path(sys.executable).parent / "dbt"
# Which constraints make which test impossible to fail.
BACKED_BY = {
    "not_null": {"not_null", "primary_key"},
    "unique": {"unique", "primary_key"},
    "relationships": {"foreign_key"},
}


def _offline_env() -> dict[str, str]:
    """dbt without a connection (the profile's variables are placeholders), with a parse of its
    own, never the worker's saved one (tests/conftest.py), which another profile would replace."""
    env = {
        **os.environ,
        "WAREHOUSE_HOST": "unused",
        "WAREHOUSE_USER": "unused",
        "WAREHOUSE_DB": "unused",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    env.pop("DBT_PARTIAL_PARSE_FILE_PATH", None)
    return env


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    """The project as dbt parses it (no connection: the profile's variables are placeholders)."""
    target = tmp_path_factory.mktemp("parse")
    env = _offline_env()
    done = subprocess.run(
        [str(DBT), "parse", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(target), "--log-path", str(target / "logs")],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    return json.loads((target / "manifest.json").read_text())


def _unique_indexes(model: dict) -> set[tuple[str, ...]]:
    return {
        tuple(index["columns"])
        for index in model["config"].get("indexes") or []
        if index.get("unique")
    }


def test_every_enforced_tag_repeats_a_constraint_the_database_checks(manifest: dict):
    nodes = manifest["nodes"]
    tagged = [n for n in nodes.values() if n["resource_type"] == "test" and "enforced" in n["tags"]]
    assert len(tagged) >= 60, "the marts' and versions' key tests are tagged"
    unbacked = []
    for test in tagged:
        meta = test["test_metadata"]
        model = nodes[test["attached_node"]]
        column = test["column_name"]
        constraints = model["columns"].get(column, {}).get("constraints", [])
        # Constraints are created only on tables (a view has none) with an enforced contract.
        table = model["config"]["materialized"] in ("table", "incremental")
        applied = table and model["config"].get("contract", {}).get("enforced", False)
        kinds = {c["type"] for c in constraints} if applied else set()
        backed = bool(BACKED_BY.get(meta["name"], set()) & kinds)
        if meta["name"] == "unique" and table and (column,) in _unique_indexes(model):
            backed = True  # the intermediate models' unique index on version_id
        if backed and meta["name"] == "relationships":
            # the foreign key names the same parent and column as the test (both `ref(...)`)
            backed = any(
                c["type"] == "foreign_key"
                and c["to"] == meta["kwargs"]["to"]
                and c["to_columns"] == [meta["kwargs"]["field"]]
                for c in constraints
            )
        if not backed:
            unbacked.append(test["name"])
    assert unbacked == []


def test_a_cycle_leaves_out_only_the_unit_tests_the_enforced_tests_and_the_views():
    plan = dbt_build.BuildPlan("hash", since_seq=4, through_seq=9, tables=("staff",))
    assert plan.selection() == [
        "--select", "source:totesys.staff+",
        "--exclude-resource-type", "unit_test",
        "--exclude", "tag:enforced", "config.materialized:view",
        "--indirect-selection", "empty",
    ]  # fmt: skip
    # A project that never built, or changed: everything, unit tests and all.
    assert dbt_build.BuildPlan("hash", 0, 9, full=True).selection() == []
    assert dbt_build.BuildPlan("hash", 9, 9).nothing_new


def _listed(env: dict[str, str], target: Path, *selection: str) -> set[str]:
    done = subprocess.run(
        [str(DBT), "ls", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(target), "--log-path", str(target / "logs"),
         "--output", "name", "--quiet", *selection],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    return set(done.stdout.split())


def test_a_selective_build_leaves_out_exactly_the_views_and_keeps_every_test(manifest, tmp_path):
    """What a selective build runs is what the graph selector reaches with dbt's own test
    selection, less the views and only the views: no test is lost with its view."""
    env = _offline_env()
    tables = ("staff", "payment", "address", "sales_order")
    plan = dbt_build.BuildPlan("hash", since_seq=4, through_seq=9, tables=tables)
    built = _listed(env, tmp_path, *plan.selection())
    reached = _listed(
        env, tmp_path, "--select", *(f"source:totesys.{t}+" for t in tables),
        "--exclude-resource-type", "unit_test", "--exclude", "tag:enforced",
    )  # fmt: skip
    views = {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"]["materialized"] == "view"
    }
    assert built <= reached
    assert reached - built == reached & views != set()
    tests_on_views = {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        and any(parent.split(".")[-1] in views for parent in node["depends_on"]["nodes"])
    }
    assert tests_on_views & reached <= built
    assert tests_on_views & built, "the tests of the views stay in the build"
