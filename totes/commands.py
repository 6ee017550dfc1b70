"""Subcommands contributed by other modules: each exposes `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

MODULES = (
    "infra.local.totesys.commands",  # seed, simulate
    "ingest.commands",  # extract
    "lambda_loader.commands",  # load, failures, skip
    "totes.cycle",  # run, status
    "totes.report",  # report
)


def registrars() -> list[Callable[[argparse._SubParsersAction], None]]:
    found = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and name.startswith(err.name):
                continue  # that part of the pipeline is not built yet
            raise
        found.append(module.register)
    return found
