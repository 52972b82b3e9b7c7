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
