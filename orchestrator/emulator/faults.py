"""Fault injection: random (seeded, reproducible) and queued (deterministic, for tests).

Kinds:

- `error_before`: 5xx, nothing done.
- `error_after`: the call is carried out (and persisted), then 5xx is answered.
- `drop_before`: the connection is closed without an answer, nothing done.
- `drop_after`: the call is carried out, then the connection is closed without an answer.
- `latency`: the answer is delayed by a spike.
- `rate_limit`: 429 / -1003 with Retry-After, nothing done and no weight used.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

ERROR_BEFORE = "error_before"
ERROR_AFTER = "error_after"
DROP_BEFORE = "drop_before"
DROP_AFTER = "drop_after"
LATENCY = "latency"
RATE_LIMIT = "rate_limit"

#: kinds drawn at random with probability `fault_rate` (a forced 429 is only ever injected).
RANDOM_KINDS: tuple[str, ...] = (ERROR_BEFORE, ERROR_AFTER, DROP_BEFORE, DROP_AFTER, LATENCY)
KINDS: tuple[str, ...] = RANDOM_KINDS + (RATE_LIMIT,)


@dataclass
class _Queued:
    kind: str
    endpoint_name: str | None
    remaining: int


class FaultPlan:
    """Decides, per request, which fault (if any) it suffers."""

    def __init__(self, rate: float = 0.0, seed: int | None = None, spike_s: float = 1.0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        self.rate = rate
        self.spike_s = spike_s
        self._rng = random.Random(seed)
        self._queue: deque[_Queued] = deque()

    def inject(self, kind: str, endpoint_name: str | None = None, count: int = 1) -> None:
        """Make the next `count` requests to `endpoint_name` (any endpoint if None) fail."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        self._queue.append(_Queued(kind, endpoint_name, count))

    def clear(self) -> None:
        self._queue.clear()

    def draw(self, endpoint_name: str) -> str | None:
        """The fault for this request. Queued faults first; the RNG is drawn exactly once per
        request either way, so a seeded run replays identically."""
        roll = self._rng.random()
        pick = self._rng.choice(RANDOM_KINDS)
        queued = self._take_queued(endpoint_name)
        if queued is not None:
            return queued
        return pick if roll < self.rate else None

    def spike(self) -> float:
        return self.spike_s * (0.5 + self._rng.random())

    def server_error_index(self) -> int:
        return self._rng.randrange(2)

    def _take_queued(self, endpoint_name: str) -> str | None:
        for item in self._queue:
            if item.endpoint_name in (None, endpoint_name):
                item.remaining -= 1
                if item.remaining == 0:
                    self._queue.remove(item)
                return item.kind
        return None
