"""The layers hold: `lint-imports` (the contracts in pyproject.toml) passes on the tree, and fails,
naming the import, on a copy of the packages with one import pointing the wrong way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "cdk.out", ".*")
# (file that gains the import, the import, how lint-imports names it)
WRONG_WAY = {
    "runtime imports a step": ("runtime/config.py", "import ingest", "runtime.config -> ingest"),
    "a step imports another": (
        "ingest/handler.py",
        "import lambda_loader.handler",
        "ingest.handler -> lambda_loader.handler",
    ),
    "a step imports the operator": (
        "publish/handler.py",
        "from totes import cli",
        "publish.handler -> totes.cli",
    ),
}


def _lint_imports() -> str:
    found = Path(sys.executable).with_name("lint-imports")
    path = str(found) if found.exists() else shutil.which("lint-imports")
    assert path, "lint-imports is not installed (import-linter, in the dev extra)"
    return path


def _run(root: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports finds the root packages on sys.path: the folder's own copy comes first.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _importlinter_section(pyproject_text: str) -> str:
    """The [tool.importlinter] table and its contracts, as written in pyproject.toml."""
    kept, keep = [], False
    for line in pyproject_text.splitlines():
        if line.startswith("["):
            keep = line.strip("[] ").startswith("tool.importlinter")
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"


def _copy(tmp_path: Path) -> Path:
    section = _importlinter_section(PYPROJECT.read_text())
    (tmp_path / "pyproject.toml").write_text(section)
    for package in tomllib.loads(section)["tool"]["importlinter"]["root_packages"]:
        shutil.copytree(REPO / package, tmp_path / package, ignore=COPY_IGNORE)
    return tmp_path


def test_the_tree_keeps_every_contract():
    result = _run(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_copy_keeps_them_too(tmp_path: Path):
    # Without this a broken copy would make the wrong-way tests below pass for the wrong reason.
    result = _run(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", sorted(WRONG_WAY))
def test_an_import_the_wrong_way_breaks_a_contract(tmp_path: Path, case: str):
    file, statement, named = WRONG_WAY[case]
    root = _copy(tmp_path)
    target = root / file
    target.write_text(f"{target.read_text()}\n{statement}  # the wrong way\n")
    result = _run(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert named in result.stdout
