"""Per-budget weight pacing, so a burst of calls uses the whole budget and gets no 429; and
the per-sub-account pace of key creates (`CreationGate`).

Binance counts weight in fixed one-minute windows, one budget per /sapi endpoint
(`Endpoint.budget_key`). A call reserves its weight in the current window before it is sent
(so in-flight calls count); when the window is full the call sleeps until the next window
boundary. Windows are computed on *server* time (the clock passed in should already include
the offset from /api/v3/time), and the `X-SAPI-USED-*-WEIGHT-1M` headers raise the local
count when someone else (another process, the web UI) spent weight on the same budget.

Our estimate of server time is only as good as half a round trip, so a small guard band
keeps the two clocks' disagreement from costing 429s: a call waiting for a new window waits
`guard_s` past the boundary (it might otherwise land in the old, full window), and a call sent
within `guard_s` before a boundary is counted in the next window too (it may land there).

A call can also land in the next window because it spent long in flight (queued behind a
burst at the server, a slow network). Callers that report completion (`acquire(...,
in_flight=True)`, then `release`) get those counted too: when a window starts, the weight of
calls from earlier windows still awaiting their answer is counted in it, since Binance may
count them there.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class _Budget:
    window: int = -1
    used: int = 0
    carry: int = 0  # weight of calls sent just before the boundary, counted in the next window
    blocked_until: float = 0.0
    in_flight: dict[int, int] = field(default_factory=dict)  # window -> weight awaiting answers

    def pending_before(self, window: int) -> int:
        return sum(w for n, w in self.in_flight.items() if n < window)


@dataclass(frozen=True)
class Reservation:
    """Weight reserved in one window; hand it back to `observe` with the response."""

    budget_key: str
    window: int
    weight: int
    tracked: bool = False


class WeightPacer:
    """Reserves weight per budget key; waits for the next window when a budget is spent.

    `clock` returns server time in seconds; `sleep` is awaited to wait (both injectable so
    tests run on virtual time). `window_s` is the window length: 60 s on Binance, shorter on
    an emulator running with `--time-scale`. `guard_s` defaults to 1% of the window, at most
    0.25 s.
    """

    def __init__(
        self,
        *,
        window_s: float = 60.0,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        guard_s: float | None = None,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self.guard_s = min(0.25, window_s * 0.01) if guard_s is None else guard_s
        self._clock = clock
        self._sleep = sleep
        self._budgets: dict[str, _Budget] = {}

    async def acquire(
        self, budget_key: str, weight: int, budget: int, *, in_flight: bool = False
    ) -> Reservation:
        """Wait until `weight` fits in the budget of the current window, then reserve it.

        With `in_flight`, the call counts in later windows too until `release` is called
        with its reservation (when its answer, or its failure, arrives)."""
        while (reservation := self.try_acquire(budget_key, weight, budget, in_flight)) is None:
            await self.wait_for_room(budget_key, weight, budget)
        return reservation

    def try_acquire(
        self, budget_key: str, weight: int, budget: int, in_flight: bool = False
    ) -> Reservation | None:
        """Reserve `weight` in the current window if it fits now; None if it does not.

        For a caller that reserves only at the moment it can send (a connection in hand):
        weight reserved by a call still queued at a window boundary would be spent in the
        old window, where it was never sent, and in the new one, where it is."""
        now = self._clock()
        state = self._current(budget_key, now)
        if now < state.blocked_until:
            return None
        # A call heavier than the whole budget still goes out alone in a fresh window.
        if state.used + weight > budget and state.used != 0:
            return None
        state.used += weight
        if self.next_boundary(now) - now < self.guard_s:
            state.carry += weight
        if in_flight:
            state.in_flight[state.window] = state.in_flight.get(state.window, 0) + weight
        return Reservation(budget_key, state.window, weight, in_flight)

    async def wait_for_room(self, budget_key: str, weight: int, budget: int) -> None:
        """Sleep until `weight` may fit in the budget (returns at once if it fits now);
        nothing is reserved, so another caller may take the room first."""
        while True:
            now = self._clock()
            state = self._current(budget_key, now)
            if now < state.blocked_until:
                await self._sleep(state.blocked_until - now)
                continue
            if state.used + weight <= budget or state.used == 0:
                return
            await self._sleep(max(self.next_boundary(now) - now, 0.0) + self.guard_s)

    def release(self, reservation: Reservation) -> None:
        """The call of a tracked reservation got its answer (or failed): no longer in flight."""
        state = self._budgets.get(reservation.budget_key)
        if not reservation.tracked or state is None:
            return
        left = state.in_flight.get(reservation.window, 0) - reservation.weight
        if left > 0:
            state.in_flight[reservation.window] = left
        else:
            state.in_flight.pop(reservation.window, None)

    def observe(self, reservation: Reservation, used_weight: int | None) -> None:
        """Take the server's count of used weight for the reservation's window into account."""
        if used_weight is None:
            return
        state = self._budgets.get(reservation.budget_key)
        if state is not None and state.window == reservation.window:
            state.used = max(state.used, used_weight)

    def block(self, budget_key: str, retry_after_s: float | None) -> float:
        """After a 429: hold every call on this budget until Retry-After (or the next window).

        Returns the number of seconds the budget is blocked for.
        """
        now = self._clock()
        if retry_after_s is None or retry_after_s < 0:
            retry_after_s = self.next_boundary(now) - now + self.guard_s
        state = self._current(budget_key, now)
        state.blocked_until = max(state.blocked_until, now + retry_after_s)
        return retry_after_s

    def used(self, budget_key: str) -> int:
        """Weight reserved so far in the current window (0 for an unknown key)."""
        if budget_key not in self._budgets:
            return 0
        return self._current(budget_key, self._clock()).used

    def window_of(self, now: float) -> int:
        return math.floor(now / self.window_s)

    def next_boundary(self, now: float) -> float:
        return (self.window_of(now) + 1) * self.window_s

    def _current(self, budget_key: str, now: float) -> _Budget:
        state = self._budgets.setdefault(budget_key, _Budget())
        window = self.window_of(now)
        if state.window != window:
            carried = state.carry if window == state.window + 1 else 0
            state.used = carried + state.pending_before(window)
            state.window = window
            state.carry = 0
        return state


class CreationGate:
    """Key creates in one sub-account one at a time, at least `interval_s` apart.

    Binance allows about one new key per sub-account per second. A create may start only
    `interval_s` (plus a 2% guard) after the previous create in the same sub-account got its
    answer: Binance handled that one before answering, so the two are at least the interval
    apart on Binance's clock too, whatever the network's delays. Creates in different
    sub-accounts do not wait for each other.
    """

    def __init__(
        self, interval_s: float, *, clock: Clock = time.time, sleep: Sleep = asyncio.sleep
    ) -> None:
        if interval_s < 0:
            raise ValueError("interval_s cannot be negative")
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._locks: dict[str, asyncio.Lock] = {}
        self._free_at: dict[str, float] = {}

    @asynccontextmanager
    async def turn(self, account: str) -> AsyncIterator[None]:
        """Wait for `account`'s turn to create a key; the create runs inside the block."""
        async with self._locks.setdefault(account, asyncio.Lock()):
            while (wait_s := self._free_at.get(account, 0.0) - self._clock()) > 0:
                await self._sleep(wait_s)
            try:
                yield
            finally:
                self._free_at[account] = self._clock() + self.interval_s * 1.02
