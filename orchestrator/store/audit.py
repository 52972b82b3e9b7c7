"""The audit log `state/audit.jsonl`: an append-only hash chain of who changed what.

Each line is the canonical JSON of an event plus `hash`, the sha256 of the canonical JSON of
the line without `hash`. `prev` is the previous line's hash (the genesis line has
"0" * 64) and `seq` counts from 1, so `verify` names the first line that was edited,
deleted, inserted, reordered or mangled. Appends take an flock, because applies of
different plans share this file.

A chain alone cannot tell a log cut short, or rewritten with every hash recomputed, from an
honest one. So each state save records the log's head (`read_head`), and `verify` checks
that the log still holds every head some state anchored.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.store.atomic import (
    PRIVATE_FILE,
    fsync_dir,
    last_line_and_offset,
    read_last_line,
    repair_torn_tail,
    write_fd_fully,
)
from orchestrator.store.lock import current_user, host_name
from orchestrator.store.plain import canonical_json, ensure_plain
from orchestrator.store.state import AuditHead

GENESIS = "0" * 64
FIELDS = (
    "seq", "ts", "who", "host", "command", "action", "subaccount", "label", "key",
    "outcome", "detail", "prev", "hash",
)  # fmt: skip


def mask_key(api_key: str | None) -> str | None:
    """`abcd…wxyz`: enough to tell keys apart in a log, not enough to use one."""
    if not api_key:
        return None
    if len(api_key) < 12:
        return "…"
    return f"{api_key[:4]}…{api_key[-4:]}"


def line_hash(event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass(frozen=True)
class Anchor:
    """A head of the log as `source` (a state file) recorded it."""

    source: str
    head: AuditHead


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    lines: int
    first_bad_line: int | None = None
    reason: str | None = None
    anchored_seq: int | None = None  # the furthest line some state anchors
    anchored_by: str | None = None

    def report(self, log_name: str) -> str:
        """What was checked, for a person: which lines an anchor vouches for and which only
        the chain does."""
        if not self.ok:
            return f"{log_name}: line {self.first_bad_line}: {self.reason}"
        intact = f"{log_name}: intact ({self.lines} lines)."
        if self.anchored_seq is None:
            if not self.lines:
                return intact
            return (
                f"{intact} No state anchors it yet: only the hash chain was checked, which"
                " cannot tell entries cut off the end or a rewrite with recomputed hashes."
            )
        anchored = f"{intact} Lines 1 to {self.anchored_seq} are anchored by {self.anchored_by}"
        if self.anchored_seq == self.lines:
            return anchored + "."
        return (
            f"{anchored}; lines {self.anchored_seq + 1} to {self.lines} came after the last"
            " state save and are only checked by the hash chain."
        )


class AuditEvents:
    """Makes the events of one command run (`apply`, `rotate`, `lockdown`...); a backend's
    log appends them with `write_group`."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.who = current_user()
        self.host = host_name()
        self._mutex = threading.Lock()

    def append(
        self,
        action: str,
        *,
        subaccount: str | None = None,
        label: str | None = None,
        api_key: str | None = None,
        outcome: str = "ok",
        detail: Any = None,
    ) -> dict[str, Any]:
        """Append one event and return it as written. `api_key` is masked before writing."""
        event = self.event(
            action,
            subaccount=subaccount,
            label=label,
            api_key=api_key,
            outcome=outcome,
            detail=detail,
        )
        return self.write_group([event])[0]

    def event(
        self,
        action: str,
        *,
        subaccount: str | None = None,
        label: str | None = None,
        api_key: str | None = None,
        outcome: str = "ok",
        detail: Any = None,
    ) -> dict[str, Any]:
        """An event for `write_group`, before it is numbered and chained."""
        return {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "who": self.who,
            "host": self.host,
            "command": self.command,
            "action": action,
            "subaccount": subaccount,
            "label": label,
            "key": mask_key(api_key),
            "outcome": outcome,
            "detail": ensure_plain(detail, "detail"),
        }

    def write_group(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise NotImplementedError


class AuditLog(AuditEvents):
    """The audit log file; appends take an flock, since applies of different plans share it."""

    def __init__(self, path: Path, command: str) -> None:
        super().__init__(command)
        self.path = Path(path)

    def write_group(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chain and append events made by `event`, under one flock and with one fsync.
        Returns them as written."""
        if not events:
            return []
        with self._mutex:
            return self._append_locked(events)

    def _append_locked(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        created = not self.path.exists()
        fd = os.open(self.path, flags, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.fchmod(fd, PRIVATE_FILE)
            repair_torn_tail(self.path, _is_event_line)
            written = chained(events, *_chain_tip(self.path))
            data = b"".join((canonical_json(event) + "\n").encode() for event in written)
            write_fd_fully(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        return written


def chained(events: list[dict[str, Any]], seq: int, prev: str) -> list[dict[str, Any]]:
    """`events` numbered and hashed to follow the entry `seq` whose hash is `prev`."""
    written = []
    for body in events:
        seq += 1
        event = {"seq": seq, **body, "prev": prev}
        event["hash"] = prev = line_hash(event)
        written.append(event)
    return written


def _is_event_line(fragment: bytes) -> bool:
    try:
        return isinstance(json.loads(fragment), dict)
    except ValueError:
        return False


def _chain_tip(path: Path) -> tuple[int, str]:
    last = read_last_line(path)
    if last is None:
        return 0, GENESIS
    try:
        event = json.loads(last)
        return int(event["seq"]), str(event["hash"])
    except (ValueError, KeyError, TypeError):
        # A damaged tip must not stop an incident command from being recorded; `verify`
        # still names the damaged line.
        count = Path(path).read_bytes().count(b"\n")
        return count, hashlib.sha256(last).hexdigest()


def read_head(path: Path) -> AuditHead | None:
    """The log's last entry and where it starts; None when there is none or it is damaged.

    Read under a shared flock so an append in progress is never seen half written."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        found = last_line_and_offset(path)
    finally:
        os.close(fd)
    if found is None:
        return None
    offset, line = found
    event = sound_event(line)
    if event is None:
        return None
    return AuditHead(seq=event["seq"], hash=event["hash"], offset=offset)


def holds(path: Path, head: AuditHead) -> bool:
    """Whether the log still has `head` where it was: one seek, not a walk of the log."""
    try:
        with open(path, "rb") as handle:
            handle.seek(head.offset)
            line = handle.readline().rstrip(b"\n")
    except (FileNotFoundError, OSError, ValueError):
        return False
    event = sound_event(line)
    return event is not None and (event["seq"], event["hash"]) == (head.seq, head.hash)


def sound_event(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or set(event) != set(FIELDS):
        return None
    if type(event["seq"]) is not int or event["hash"] != line_hash(event):
        return None
    return event


def verify(path: Path, anchors: Sequence[Anchor] = ()) -> VerifyResult:
    """Walk the chain; the first line whose content, hash, link or number is wrong fails it.
    Then every anchor must name a line the log still has, with the same hash."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raw = b""
    return verify_bytes(raw, anchors)


def verify_bytes(raw: bytes, anchors: Sequence[Anchor] = ()) -> VerifyResult:
    """`verify` of a log's content, one event per line, wherever the lines are kept."""
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    wanted = {anchor.head.seq for anchor in anchors}
    hashes: dict[int, str] = {}
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        reason = _line_problem(line, number, prev, is_last=number == len(lines), raw=raw)
        if reason is not None:
            return VerifyResult(ok=False, lines=len(lines), first_bad_line=number, reason=reason)
        prev = json.loads(line)["hash"]
        if number in wanted:
            hashes[number] = prev
    return _check_anchors(len(lines), hashes, anchors)


def _check_anchors(count: int, hashes: dict[int, str], anchors: Sequence[Anchor]) -> VerifyResult:
    broken = sorted(
        (a for a in anchors if hashes.get(a.head.seq) != a.head.hash), key=lambda a: a.head.seq
    )
    if broken:
        first = broken[0].head.seq
        reason = "; ".join(_anchor_problem(count, anchor) for anchor in broken)
        return VerifyResult(
            ok=False, lines=count, first_bad_line=min(first, count + 1), reason=reason
        )
    furthest = max(anchors, key=lambda a: a.head.seq, default=None)
    return VerifyResult(
        ok=True,
        lines=count,
        anchored_seq=furthest.head.seq if furthest else None,
        anchored_by=furthest.source if furthest else None,
    )


def _anchor_problem(count: int, anchor: Anchor) -> str:
    seq = anchor.head.seq
    if seq > count:
        return (
            f"the log ends at line {count}, but {anchor.source} anchors line {seq}:"
            " entries were cut off the end"
        )
    return (
        f"line {seq} is not the entry {anchor.source} anchors: the log was rewritten"
        " (its hashes were recomputed)"
    )


def _line_problem(line: bytes, number: int, prev: str, is_last: bool, raw: bytes) -> str | None:
    try:
        event = json.loads(line)
    except ValueError:
        if is_last and not raw.endswith(b"\n"):
            return f"line {number} is incomplete (a write was cut off)"
        return f"line {number} is not valid JSON"
    if not isinstance(event, dict) or set(event) != set(FIELDS):
        return f"line {number} does not have the audit fields"
    if event["hash"] != line_hash(event):
        return f"line {number} was modified (its hash does not match its content)"
    if event["prev"] != prev:
        return (
            f"line {number} does not follow line {number - 1}"
            " (a line was deleted, inserted or moved here)"
        )
    if event["seq"] != number:
        return f"line {number} has sequence number {event['seq']} (lines were moved or removed)"
    return None
