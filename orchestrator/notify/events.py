"""What a run tells the project's notification targets, as typed events.

An event says what happened in a few secret-free lines; a `Notice` wraps it with the project
and the audit log's head hash, so whoever reads it can find the matching lines in
`state/audit.jsonl` and check the log was not rewritten since (`orchestrator log verify`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

#: audit severities a notification level can name, lowest first.
LEVELS = ("low", "medium", "high", "critical")
DEFAULT_LEVEL: Final = "high"
#: how many findings or failed actions one notice lists before it says how many more.
MAX_LINES = 20
MAX_LINE_CHARS = 300

Urgency = Literal["info", "warning", "failure"]

_PEM_BLOCK = re.compile(r"-----BEGIN [^-]*-----.*?(-----END [^-]*-----|$)", re.DOTALL)
#: a long unbroken run of key-like characters: an API key, a secret or a base64 body.
_KEY_LIKE = re.compile(r"[A-Za-z0-9+=]{40,}")
REDACTED = "[redacted]"


def level_rank(level: str) -> int:
    """Where `level` sits among LEVELS (0 for low); ValueError for anything else."""
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}") from None


def clean(text: str) -> str:
    """One line of an event, short, with anything shaped like key material taken out.

    Events are built from messages that never hold a secret; this is the second line of
    defence, in case one ever does."""
    text = _PEM_BLOCK.sub(REDACTED, str(text))
    text = _KEY_LIKE.sub(REDACTED, text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…"


@dataclass(frozen=True)
class Alert:
    """One finding in a notice: how severe, where (`sub/label`), what."""

    severity: str
    address: str
    message: str

    def line(self) -> str:
        return clean(f"{self.severity.upper()} {self.address}: {self.message}")


class Event:
    """Something a run reports. Each kind says its headline and detail lines."""

    def urgency(self) -> Urgency:
        return "warning"

    def headline(self) -> str:
        raise NotImplementedError

    def details(self) -> list[str]:
        return []


@dataclass(frozen=True)
class CommandFailed(Event):
    """A command did not finish its work: it stopped with an error (`reason`, and any further
    lines of it), or some of its actions failed (one line each)."""

    command: str
    reason: str
    lines: tuple[str, ...] = ()

    def urgency(self) -> Urgency:
        return "failure"

    def headline(self) -> str:
        return f"{self.command} failed"

    def details(self) -> list[str]:
        return [clean(self.reason), *_bounded([clean(line) for line in self.lines], "lines")]


@dataclass(frozen=True)
class PossibleCompromise(Event):
    """The live account shows what nobody planned: permissions or IPs widened outside the
    plan, keys nobody made in a managed sub-account, withdrawals enabled."""

    command: str
    signs: tuple[Alert, ...]

    def urgency(self) -> Urgency:
        return "failure"

    def headline(self) -> str:
        return f"possible compromise ({len(self.signs)} sign(s), seen by {self.command})"

    def details(self) -> list[str]:
        lines = _bounded([sign.line() for sign in self.signs], "signs")
        return [
            *lines,
            "If nobody on your team did this, treat the master key as stolen: "
            "orchestrator lockdown --all",
        ]


@dataclass(frozen=True)
class AuditFindings(Event):
    """Audit findings at or above `level`, and any sign of compromise whatever its level."""

    level: str
    findings: tuple[Alert, ...]
    compromise: bool = False

    def urgency(self) -> Urgency:
        return "failure" if self.compromise else "warning"

    def headline(self) -> str:
        what = "possible compromise" if self.compromise else "audit"
        return f"{what}: {len(self.findings)} finding(s) at {self.level} or above"

    def details(self) -> list[str]:
        return _bounded([alert.line() for alert in self.findings], "findings")


@dataclass(frozen=True)
class LockdownRan(Event):
    """An incident lockdown deleted every key in its scope (or tried to)."""

    subaccounts: int
    deleted: int
    failed: int

    def urgency(self) -> Urgency:
        return "failure" if self.failed else "warning"

    def headline(self) -> str:
        return f"lockdown: {self.deleted} key(s) deleted, {self.failed} failed"

    def details(self) -> list[str]:
        return [
            f"Every API key of {self.subaccounts} sub-account(s) was deleted"
            + (f", except {self.failed} that could not be" if self.failed else "")
            + ". To recreate the planned keys with fresh material: orchestrator apply"
        ]


@dataclass(frozen=True)
class Notice:
    """An event as sent: to whom it belongs and where the audit log stood."""

    project: str
    audit_head: str | None  # the hash of the audit log's last line; None: no log yet
    event: Event

    @property
    def title(self) -> str:
        return clean(f"orchestrator [{self.project}]: {self.event.headline()}")

    @property
    def body(self) -> str:
        head = self.audit_head or "none (the audit log is empty)"
        footer = f"Project {clean(self.project)}; audit log head {head}"
        return "\n".join([*self.event.details(), footer])


def _bounded(lines: list[str], what: str) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], f"… and {len(lines) - MAX_LINES} more {what}"]
