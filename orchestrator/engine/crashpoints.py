"""Named points in apply and rotate where a test can kill the process, deterministically.

`ORCHESTRATOR_CRASH_AT=<point>` (or `<point>#<n>` for the n-th time it is reached) makes the
process SIGKILL itself there, as a power loss would: no cleanup, no flush, no finally. The
reliability tests use it to show that every mutating step converges on the next run.
`ORCHESTRATOR_CRASH_TRACE=<file>` appends the name of every point reached to that file, one
a line, so a test can count how many times each point is reached by a run.
Unset (always, outside those tests) it costs two dictionary lookups.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "ORCHESTRATOR_CRASH_AT"
TRACE_ENV = "ORCHESTRATOR_CRASH_TRACE"
POINTS = (
    "before_call",  # an update or sub-account create: intent written, call not made
    "between_calls",  # an IP update: the add call made, the delete call not yet
    "after_call",  # an update or sub-account create: call made, state not saved
    "after_pending_material",  # ed25519: private key in the sink as pending, key not created
    "before_create",
    "after_create",
    "after_material",  # the key's material (with its api key) in the sink, not promoted
    "after_state",  # the new key recorded in state; a rotation not promoted yet
    "after_promote",
    "after_reload",  # reload/check ran for a new key, their result not recorded in state
    "after_reload_state",  # their result recorded; older generations not deleted yet
    "rollback_begun",  # a failed rotation: about to be undone, nothing undone yet
    "after_rollback_state",  # a failed rotation: state rolled back, new key not deleted yet
    "before_delete",
    "after_delete",
    "after_material_copied",  # a sink move: every copy written to the new sink, not read back
    "after_old_material_destroyed",  # a sink move: the old sink emptied, state not saved
)
_reached: Counter[str] = Counter()


def reached(point: str) -> None:
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a", encoding="utf-8") as out:
            out.write(point + "\n")
    target = os.environ.get(ENV)
    if not target:
        return
    name, _, nth = target.partition("#")
    if name != point:
        return
    _reached[point] += 1
    if _reached[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
