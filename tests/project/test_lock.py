"""uv.lock is the lock; constraints.txt is the same pins for pip (CodeBuild's install, `make
lambda-deps`, `make dbt-wheels`), written from the lock by `make lock`. The two cannot drift, and
the Makefile bootstraps exactly the uv release the lock names."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")


def locked() -> dict[str, str]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"] if "version" in p}


def test_constraints_txt_is_the_export_of_uv_lock():
    exported = subprocess.run(
        [str(UV), "export", "--quiet", "--frozen", "--offline", "--extra", "dev",
         "--no-emit-project", "--no-hashes", "--no-annotate", "--no-header"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    pins = [ln for ln in (REPO / "constraints.txt").read_text().splitlines() if ln[:1] != "#"]
    assert pins == exported.splitlines(), "constraints.txt is stale: run `make lock`"


def test_the_makefile_bootstraps_the_uv_the_lock_names():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r'"uv==\$\$\(\$\(LOCKED_UV\)\)"', makefile)
    found = subprocess.run(
        [str(UV), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert found[:2] == ["uv", locked()["uv"]]


def test_the_pins_that_matter_hold_in_the_lock():
    # pyproject.toml gives each its reason; the lock must honour them.
    versions = locked()
    major_minor = {n: tuple(int(x) for x in versions[n].split(".")[:2]) for n in versions}
    assert major_minor["dbt-core"] < (1, 12)
    assert major_minor["pyarrow"] < (26, 0)
    assert major_minor["pytest"] < (9, 2)
    assert versions["awswrangler"] == "3.17.1"


def test_aws_cdk_lib_owns_the_cloud_assembly_schema_module_both_packages_ship():
    # Without it, jsii cannot resolve aws-cdk-lib's MetadataEntry (`Annotations` fails).
    [record] = Path(sys.prefix).glob("lib/python*/site-packages/aws_cdk_lib-*.dist-info/RECORD")
    module = "aws_cdk/cloud_assembly_schema/__init__.py"
    [line] = [ln for ln in record.read_text().splitlines() if ln.startswith(module + ",")]
    digest = base64.urlsafe_b64encode(
        hashlib.sha256((record.parents[1] / module).read_bytes()).digest()
    ).rstrip(b"=")
    assert line.split(",")[1] == "sha256=" + digest.decode(), "run `make install` again"
