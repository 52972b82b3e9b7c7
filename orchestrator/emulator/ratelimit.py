"""Fixed-window weight counters, one per budget (endpoint budget key and caller).

Windows are aligned to the clock like Binance's minute windows: window n covers
[n * length, (n + 1) * length). `length` is 60 s divided by the emulator's time scale.
"""

from __future__ import annotations

import math


class FixedWindowLimiter:
    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError("window length must be positive")
        self.window_s = window_s
        self._used: dict[tuple, tuple[int, int]] = {}

    def _window(self, now: float) -> int:
        return math.floor(now / self.window_s)

    def used(self, key: tuple, now: float) -> int:
        window, used = self._used.get(key, (None, 0))
        return used if window == self._window(now) else 0

    def try_consume(self, key: tuple, weight: int, budget: int, now: float) -> bool:
        """Add `weight` if it fits in the budget of the current window; a refusal costs nothing."""
        used = self.used(key, now)
        if used + weight > budget:
            return False
        self._used[key] = (self._window(now), used + weight)
        return True

    def retry_after(self, now: float) -> float:
        """Seconds until the current window ends."""
        return (self._window(now) + 1) * self.window_s - now


def format_retry_after(seconds: float, time_scale: float) -> str:
    """Whole seconds (rounded up) at real speed, as Binance sends; else a decimal like '0.42'."""
    if time_scale == 1:
        return str(max(1, math.ceil(seconds)))
    return f"{max(seconds, 0.01):.2f}"


class CreationPace:
    """At most one key creation per account every `interval_s` (0: no limit).

    Binance's guidance allows "about one" new API key per sub-account per second and documents
    no error for going faster. The emulator answers a faster create the way /sapi answers any
    rate limit, 429 / -1003 with Retry-After (the time left until a create is allowed again).
    The check runs once the call passed authentication, its weight and the master's
    permission, and the sub-account is known (so the weight is spent); only creates that
    succeed start the interval.
    """

    def __init__(self, interval_s: float) -> None:
        if interval_s < 0:
            raise ValueError("the key creation interval cannot be negative")
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def wait_s(self, account: str, now: float) -> float:
        """Seconds until `account` may create a key again (0 when it may now)."""
        last = self._last.get(account)
        if last is None or self.interval_s == 0:
            return 0.0
        return max(last + self.interval_s - now, 0.0)

    def record(self, account: str, now: float) -> None:
        self._last[account] = now
