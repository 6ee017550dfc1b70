"""`publish.marts` is the dbt project's list of mart tables, so neither can change alone."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from publish import marts

MARTS_DIR = Path(__file__).resolve().parents[2] / "dbt_warehouse" / "models" / "marts"
VIEW = re.compile(r"materialized\s*=\s*['\"]view['\"]")


def mart_models() -> tuple[set[str], set[str]]:
    """The mart models (by .sql file name): (tables, views)."""
    tables, views = set(), set()
    for sql in MARTS_DIR.glob("*.sql"):
        (views if VIEW.search(sql.read_text()) else tables).add(sql.stem)
    return tables, views


def model_columns() -> dict[str, dict[str, dict]]:
    """Every mart model's columns as documented in its yml: model → column → properties."""
    found: dict[str, dict[str, dict]] = {}
    for path in MARTS_DIR.glob("*.yml"):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            found[model["name"]] = {c["name"]: c for c in model.get("columns", [])}
    return found


def test_the_mart_list_is_every_mart_table_the_dbt_project_builds():
    tables, views = mart_models()
    assert tables, f"no mart models found in {MARTS_DIR}"
    assert set(marts.TABLES) | set(marts.DELETIONS) == tables
    assert len(marts.TABLES) == len(set(marts.TABLES)) == len(marts.FACTS) + len(marts.DIMENSIONS)
    assert not set(marts.DELETIONS) & set(marts.TABLES)
    assert all(t.startswith("fact_") for t in marts.FACTS)
    assert all(t.startswith("dim_") for t in marts.DIMENSIONS)
    # The views are each fact's current state and history, and the deleted dimension members:
    # derived in the warehouse and never published.
    assert views == {
        *(f"{fact}_current" for fact in marts.FACTS),
        *(f"{fact}_history" for fact in marts.FACTS),
        "deleted_members",
    }


def test_each_listed_key_is_its_marts_unique_key():
    columns = model_columns()
    for table, key in {**marts.FACTS, **marts.DIMENSIONS, **marts.DELETIONS}.items():
        assert key in columns.get(table, {}), f"{table} documents no column {key}"
        column = columns[table][key]
        tests = [t if isinstance(t, str) else next(iter(t)) for t in column.get("data_tests", [])]
        assert "unique" in tests, f"{table}.{key} is not tested unique"


def test_a_dimension_compared_by_its_versions_is_derived_from_them_alone():
    """publish compares only the members of MEMBER_VERSIONS' dimensions that have a new
    version: right only while the dimension reads that versions model and nothing else."""
    for dimension, versions in marts.MEMBER_VERSIONS.items():
        assert dimension in marts.DIMENSIONS
        sql = (MARTS_DIR / f"{dimension}.sql").read_text()
        assert re.findall(r"ref\(\s*'([^']+)'\s*\)", sql) == [versions], dimension
        assert "source(" not in sql
        key = marts.DIMENSIONS[dimension]
        assert f"'{key}'" in sql, f"{dimension} takes its members by {key} from {versions}"
