"""`totes run` that is killed (SIGKILL, as `kill -9` does) halfway through one of its steps.

    python -m support.killed_cycle STEP      # extract | load | publish | publish-deletions

Each step is killed at its worst moment, through the seam its own crash tests use: the extract
after its data files and before its manifest; the load in the middle of its COPYs, inside the
manifest's transaction; publish after an object's upload (or the deletions file's:
`publish-deletions`) and before its ledger moved. The steps themselves are the real ones, on
the real stack; only the moment of death is chosen. The process never returns: its exit status
is -SIGKILL.
"""

from __future__ import annotations

import functools
import os
import signal
import sys

from totes import cli, cycle


def die(*_: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_on_call(n: int):
    """A hook that kills the process on its n-th call (later calls never come)."""
    calls = iter(range(1, n + 1))

    def hook(*_: object) -> None:
        if next(calls) == n:
            die()

    return hook


def die_on_table(table: str):
    """A publish hook that kills the process after the upload of `table`'s first file."""

    def hook(file: object) -> None:
        if getattr(file, "table", None) == table:
            die()

    return hook


def main(step: str) -> None:
    if step == "extract":
        cycle.run_extract = functools.partial(cycle.run_extract, after_files=die)
    elif step == "load":
        # the third chunk sent: two tables' rows are in, uncommitted, when it dies
        cycle.run_load = functools.partial(cycle.run_load, chunk_hook=die_on_call(3))
    elif step == "publish":
        cycle.publish = functools.partial(cycle.publish, after_upload=die)
    elif step == "publish-deletions":
        # after the upload of the deletions file, before its ledger moved
        cycle.publish = functools.partial(cycle.publish, after_upload=die_on_table("deletions"))
    else:
        raise SystemExit(f"unknown step {step!r}")
    cli.main(["run"])
    raise SystemExit(f"the cycle ended before it was killed in {step}")


if __name__ == "__main__":
    main(sys.argv[1])
