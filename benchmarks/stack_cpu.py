"""CPU seconds spent by the local stack's servers (PostgreSQL, the moto S3 server) and by one
benchmark child: what a contender costs the machine, whatever else runs on it.

Wall time on a shared 2-core machine follows the other engineers' load; the CPU a contender
and the servers it drives spend on its work does not (much). The benchmarks print both, each
beside the raw COPY's, measured in the same round.

PostgreSQL's share is the postmaster's own time, its exited children's (every backend that
ended, reaped by the postmaster) and its live children's: everything the cluster did between
two readings, its background workers included (a few milliseconds a second when idle).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Usage:
    """One child's wall time, peak RSS, CPU, and the servers' CPU meanwhile."""

    seconds: float
    peak_mb: float
    cpu_s: float  # the child's own user + system time (threads and its children included)
    postgres_cpu_s: float
    s3_cpu_s: float
    stdout: str

    @property
    def total_cpu_s(self) -> float:
        return self.cpu_s + self.postgres_cpu_s + self.s3_cpu_s


class StackCpu:
    """Reads the CPU seconds used so far by the servers of the stack at `home`."""

    def __init__(self, home: Path) -> None:
        self.postgres = _pid(home / "pg" / "data" / "postmaster.pid")
        self.s3 = _pid(home / "s3_server.pid")

    def read(self) -> tuple[float, float]:
        return _tree_seconds(self.postgres), _tree_seconds(self.s3)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _tree_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        process = psutil.Process(pid)
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in process.children():
            with contextlib.suppress(psutil.Error):  # it may end while being read
                own = child.cpu_times()
                total += own.user + own.system
        return total
    except psutil.Error:
        return 0.0


# Runs one command and reports its wall time, peak RSS and CPU. A small process of its own, so
# the measured child inherits this launcher's few MB of RSS high-water mark, not the
# benchmark's (Linux carries ru_maxrss over a fork and exec).
_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
out = child.stdout.read()
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"seconds": time.perf_counter() - started, "peak_mb": usage.ru_maxrss / 1024,
                  "cpu_s": usage.ru_utime + usage.ru_stime,
                  "code": os.waitstatus_to_exitcode(status), "stdout": out.decode()}))
"""


def run_measured(command: list[str], env: dict[str, str], stack: StackCpu) -> Usage:
    """Run `command` in a child process of its own; raises SystemExit if it fails."""
    postgres_before, s3_before = stack.read()
    out = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    time.sleep(0.05)  # the backend's exit reaches the postmaster's children's times
    postgres_after, s3_after = stack.read()
    report = json.loads(out.stdout)
    if report["code"] != 0:
        raise SystemExit(f"{command[:4]} failed with exit code {report['code']}: {out.stderr}")
    return Usage(
        report["seconds"],
        report["peak_mb"],
        report["cpu_s"],
        postgres_after - postgres_before,
        s3_after - s3_before,
        report["stdout"],
    )


def machine_state() -> str:
    """`uptime`'s load averages and the CPU pressure, for the record beside the figures."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    pressure = ""
    with contextlib.suppress(OSError):
        some = Path("/proc/pressure/cpu").read_text().split()[1]  # avg10=…
        pressure = f"; CPU pressure {some}"
    return f"load average {load} on {os.cpu_count()} cores{pressure}"
