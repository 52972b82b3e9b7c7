"""Named points in apply and rotate where a test can kill the process, deterministically.

`ORCHESTRATOR_CRASH_AT=<point>` (or `<point>#<n>` for the n-th time it is reached) makes the
process SIGKILL itself there, as a power loss would: no cleanup, no flush, no finally. The
reliability tests use it to show that every mutating step converges on the next run.
Unset (always, outside those tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "ORCHESTRATOR_CRASH_AT"
POINTS = (
    "after_pending_material",
    "before_create",
    "after_create",
    "after_material",
    "after_state",
    "after_promote",
    "before_delete",
    "after_delete",
)
_reached: Counter[str] = Counter()


def reached(point: str) -> None:
    target = os.environ.get(ENV)
    if not target:
        return
    name, _, nth = target.partition("#")
    if name != point:
        return
    _reached[point] += 1
    if _reached[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
