"""A CPU burner on one core, for the loaded-machine scenario: a subprocess that spins until it
is stopped or its deadline passes, whichever comes first."""

from __future__ import annotations

import os
import subprocess
import sys

SPIN = """
import os, sys, time
cpu = int(sys.argv[1])
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {cpu})
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    sum(range(10_000))
"""


class CpuBurner:
    """Spins on the highest-numbered CPU this process may use, for at most `max_s` seconds."""

    def __init__(self, max_s: float) -> None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
        self.cpu = cpus[-1]
        self.max_s = max_s
        self.proc: subprocess.Popen | None = None
        self.cpu_s = 0.0

    def __enter__(self) -> CpuBurner:
        self.proc = subprocess.Popen([sys.executable, "-c", SPIN, str(self.cpu), str(self.max_s)])
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.proc is not None
        self.cpu_s = _cpu_seconds(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(10)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process (0 where /proc is not available)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)
