"""Durations as plans write them: `30d`, `12h`, `15m`, `45s`, `0s`, or combined like `1d12h`."""

from __future__ import annotations

import re
from datetime import timedelta

ACCEPTED_FORMS = "a number with a unit d, h, m or s, e.g. 30d, 12h, 15m, 45s, 0s, 1d12h"
_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


class DurationError(ValueError):
    pass


def parse_duration(value: object) -> timedelta:
    """A timedelta from `30d`-style text. The bare integer 0 is accepted (as in `grace: 0`)."""
    if isinstance(value, timedelta):
        return value
    if value == 0 and isinstance(value, int) and not isinstance(value, bool):
        return timedelta(0)
    if not isinstance(value, str):
        raise DurationError(f"expected a duration, got {type(value).__name__} {value!r}")
    text = value.strip()
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise DurationError(f"{value!r} is not a duration")
    parts = {unit: int(amount) for unit, amount in match.groupdict().items() if amount}
    return timedelta(
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )


def format_duration(delta: timedelta) -> str:
    """The shortest plan-style text for `delta` (the inverse of parse_duration)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    text = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            text += f"{amount}{unit}"
    return text
