"""Durations in plan output: short, but never so rounded that a reason reads false.

`age 1m > rotate_after 1m` was the rounding this avoids: an age shown against a limit gets
as many units as it takes to read larger than the limit (`age 1m01s > rotate_after 1m`).
"""

from __future__ import annotations

from datetime import timedelta

from orchestrator.config.durations import format_duration

UNITS = (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000))
MICROSECONDS = 1_000_000


def short_duration(delta: timedelta, units: int = 2) -> str:
    """`delta` in at most `units` units from its largest, truncated: 59s, 1m01s, 1h02m, 30d,
    30d05h. Units after the first are two digits; trailing zero units are left out."""
    return _truncated(delta, units)[0]


def age_over(age: timedelta, limit: timedelta) -> str:
    """`age 34d > rotate_after 30d` for an age past its limit: the limit as the plan writes it,
    the age with the fewest units (down to fractions of a second) that read larger."""
    for units in range(1, len(UNITS) + 1):
        shown, value = _truncated(age, units)
        if value > limit:
            return f"age {shown} > rotate_after {format_duration(limit)}"
    return f"age {_exact(age)} > rotate_after {format_duration(limit)}"


def _truncated(delta: timedelta, units: int) -> tuple[str, timedelta]:
    """(text, the duration the text stands for)."""
    left = max(_microseconds(delta), 0)
    parts: list[str] = []
    kept = 0
    for unit, size in UNITS:
        amount, left = divmod(left, size)
        if parts or amount:
            parts.append(f"{amount:02d}{unit}" if parts else f"{amount}{unit}")
            kept += amount * size
        if len(parts) == units:
            break
    while len(parts) > 1 and parts[-1].startswith("00"):
        parts.pop()
    return "".join(parts) or "0s", timedelta(microseconds=kept)


def _exact(delta: timedelta) -> str:
    """Every unit from the largest, seconds with their fraction: 1m00.5s, 1h00m00.25s."""
    left = max(_microseconds(delta), 0)
    parts: list[str] = []
    for unit, size in UNITS[:-1]:
        amount, left = divmod(left, size)
        if parts or amount:
            parts.append(f"{amount:02d}{unit}" if parts else f"{amount}{unit}")
    seconds, fraction = divmod(left, MICROSECONDS)
    decimals = f".{fraction:06d}".rstrip("0").rstrip(".")
    parts.append(f"{seconds:02d}{decimals}s" if parts else f"{seconds}{decimals}s")
    return "".join(parts)


def _microseconds(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * MICROSECONDS + delta.microseconds
