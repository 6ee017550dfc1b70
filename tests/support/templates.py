"""Prepared states built once per xdist worker and copied into a test's isolation.

Many tests begin the same way: seed totesys, run a first clean cycle (or load raw and build the
marts), then do what they are about. A template runs that beginning once, on the worker's own
stack and under the worker's own database names (so dbt's saved parse still applies), then keeps
it: the two databases renamed to template databases, the lake in buckets of its own, the cycle's
work folder (dbt's previous target) on disk. A test gets a copy: `CREATE DATABASE … TEMPLATE`
(a file copy, no replay), the objects copied server-side into its own buckets, the folder copied.

A template is built by the same calls the test made itself before, so the state a test starts
from is the one it built until now; whatever the builder asserted (the first cycle succeeded)
is asserted once per worker instead of once per test.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import db


@dataclass(frozen=True)
class Template:
    """One prepared state: template databases, the lake's buckets, the cycle's work folder."""

    name: str
    databases: dict[str, str]  # the test's database name -> the template database holding it
    buckets: tuple[tuple[str, str], ...]  # (template bucket, "ingestion" | "processed")
    work_dir: Path


def template_database(name: str, database: str) -> str:
    return f"template_{name}_{database}"


def _disconnect(admin: Any, databases: list[str]) -> None:
    # Renaming or copying a database needs it free of sessions; a builder's are closed by now,
    # but a killed helper's may linger for a moment.
    admin.run(
        "select pg_terminate_backend(pid) from pg_catalog.pg_stat_activity "
        "where datname = any(:names) and pid <> pg_backend_pid()",
        names=databases,
    )


def freeze(admin: Any, name: str, databases: list[str]) -> dict[str, str]:
    """Rename the built databases to template databases that nothing connects to any more."""
    frozen = {}
    _disconnect(admin, databases)
    for database in databases:
        template = template_database(name, database)
        admin.run(f"drop database if exists {db.quote_ident(template)} with (force)")
        admin.run(f"alter database {db.quote_ident(database)} rename to {db.quote_ident(template)}")
        admin.run(
            f"alter database {db.quote_ident(template)} "
            "with is_template true allow_connections false"
        )
        frozen[database] = template
    return frozen


def copy_databases(admin: Any, template: Template) -> None:
    """Replace the test's databases by copies of the template's."""
    for database, source in template.databases.items():
        admin.run(f"drop database if exists {db.quote_ident(database)} with (force)")
        admin.run(f"create database {db.quote_ident(database)} template {db.quote_ident(source)}")


def copy_bucket(s3: Any, source: str, target: str) -> int:
    """Every object of `source` into `target`, server-side, metadata and content type kept."""
    copied = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source):
        for obj in page.get("Contents", []):
            s3.copy_object(
                Bucket=target, Key=obj["Key"], CopySource={"Bucket": source, "Key": obj["Key"]}
            )
            copied += 1
    return copied


def copy_work_dir(template: Template, work_dir: Path) -> None:
    if template.work_dir.exists():
        shutil.copytree(template.work_dir, work_dir, dirs_exist_ok=True, symlinks=True)


class Templates:
    """The worker's templates by name, each built on first use (a failed build fails every test
    that asks for it, with the builder's error)."""

    def __init__(self, build: Callable[[str, Callable[..., None]], Template]) -> None:
        self._build = build
        self._built: dict[str, Template | BaseException] = {}

    def get(self, name: str, builder: Callable[..., None]) -> Template:
        if name not in self._built:
            try:
                self._built[name] = self._build(name, builder)
            except BaseException as err:
                self._built[name] = err
                raise
        found = self._built[name]
        if isinstance(found, BaseException):
            raise RuntimeError(f"template {name!r} could not be built") from found
        return found
