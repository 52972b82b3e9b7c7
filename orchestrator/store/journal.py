"""The write-ahead journal `state/<plan>.journal.jsonl`.

Before each mutating call the engine writes an *intent*; after it, an *outcome*. Both are
fsynced, so after a crash `pending()` lists exactly the calls whose effect is unknown and
must be reconciled against live state. A run's entries go through `write_group`, so the
entries of concurrent operations share one fsync.

A last line torn by a crash mid-write is ignored: its fsync never returned, so the call it
announced was never made. A damaged line elsewhere (a disk error, a hand edit) stops nothing:
the readable entries are used, the damaged line numbers are reported (never their content),
and when the journal is cleared the file is kept aside for inspection instead of deleted.
Whatever a damaged line recorded, the next plan/apply reconciles from the live account and
the sinks, which are the evidence; the journal only says where to look first.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.store.atomic import (
    PRIVATE_FILE,
    atomic_rename,
    fsync_dir,
    repair_torn_tail,
    unlink_durably,
    write_fd_fully,
)
from orchestrator.store.plain import canonical_json, ensure_plain


@dataclass(frozen=True)
class JournalEntry:
    kind: str  # "intent" | "outcome"
    op_id: str
    ts: str
    action: dict[str, Any] | None = None
    ok: bool | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None


@dataclass(frozen=True)
class JournalReading:
    entries: list[JournalEntry] = field(default_factory=list)
    damaged_lines: list[int] = field(default_factory=list)


def _is_entry_line(fragment: bytes) -> bool:
    return parse_line(fragment) is not None


def parse_line(line: bytes) -> JournalEntry | None:
    """The entry on `line`, or None when it is not one (not JSON, or not an entry's shape)."""
    try:
        return _entry(json.loads(line))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._mutex = threading.Lock()

    def intent(self, op_id: str, action: dict[str, Any]) -> None:
        """Record, durably, that the call described by `action` is about to be made."""
        self.write_group([intent_record(op_id, action)])

    def outcome(
        self,
        op_id: str,
        result: dict[str, Any] | None = None,
        error: BaseException | str | None = None,
    ) -> None:
        """Record how the call `op_id` ended: a plain `result`, or an `error`."""
        self.write_group([outcome_record(op_id, result, error)])

    def write_group(self, records: list[dict[str, Any]]) -> list[None]:
        """Append the records made by `intent_record`/`outcome_record`, with one fsync."""
        self._append(records)
        return [None] * len(records)

    def read(self) -> JournalReading:
        """The readable entries in order, and the numbers of the lines that are damaged. A
        torn last line (no newline after it) is neither."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return JournalReading()
        lines = raw.split(b"\n")
        reading = JournalReading()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            entry = parse_line(line)
            if entry is not None:
                reading.entries.append(entry)
            elif number < len(lines):  # the last piece has no newline after it: torn
                reading.damaged_lines.append(number)
        return reading

    def entries(self) -> list[JournalEntry]:
        """Every readable entry in order."""
        return self.read().entries

    def damaged_lines(self) -> list[int]:
        return self.read().damaged_lines

    def damage_report(self) -> str | None:
        """A line for the person running the command, when the journal has damaged lines."""
        damaged = self.damaged_lines()
        if not damaged:
            return None
        numbers = ", ".join(str(n) for n in damaged[:10])
        more = f" and {len(damaged) - 10} more" if len(damaged) > 10 else ""
        plural = "s" if len(damaged) > 1 else ""
        return (
            f"{self.path} line{plural} {numbers}{more} could not be read and were skipped;"
            " the rest of the journal is used and the live account and sinks decide the"
            " rest. The file is kept aside (.damaged-<time>) when this run clears it."
        )

    def pending(self) -> list[JournalEntry]:
        """Intents that have no outcome: calls whose effect is unknown after a crash."""
        entries = self.entries()
        finished = {e.op_id for e in entries if e.kind == "outcome"}
        return [e for e in entries if e.kind == "intent" and e.op_id not in finished]

    def clear(self) -> Path | None:
        """Forget everything once reconciled; one unlink (or rename), so a crash leaves all
        or nothing. A journal with damaged lines is renamed aside for inspection; returns
        where it was kept, or None."""
        with self._mutex:
            if not self.damaged_lines():
                unlink_durably(self.path)
                return None
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            kept = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
            atomic_rename(self.path, kept)
            return kept

    def _append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = b"".join((canonical_json(record) + "\n").encode() for record in records)
        with self._mutex:
            repair_torn_tail(self.path, _is_entry_line)
            created = not self.path.exists()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(self.path, flags, PRIVATE_FILE)
            try:
                os.fchmod(fd, PRIVATE_FILE)
                write_fd_fully(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.path.parent)


def intent_record(op_id: str, action: dict[str, Any]) -> dict[str, Any]:
    """The journal line saying that the call described by `action` is about to be made."""
    return _stamped({"kind": "intent", "op": op_id, "action": ensure_plain(action, "action")})


def outcome_record(
    op_id: str,
    result: dict[str, Any] | None = None,
    error: BaseException | str | None = None,
) -> dict[str, Any]:
    """The journal line saying how the call `op_id` ended."""
    record: dict[str, Any] = {"kind": "outcome", "op": op_id, "ok": error is None}
    if result is not None:
        record["result"] = ensure_plain(result, "result")
    if error is not None:
        record["error"] = _describe_error(error)
    return _stamped(record)


def _stamped(record: dict[str, Any]) -> dict[str, Any]:
    record["ts"] = datetime.now(UTC).isoformat(timespec="microseconds")
    return record


def _entry(data: dict[str, Any]) -> JournalEntry:
    kind = data["kind"]
    if kind not in ("intent", "outcome"):
        raise ValueError(kind)
    for name, kinds in _OPTIONAL_FIELDS.items():
        if not isinstance(data.get(name), kinds):
            raise TypeError(name)
    return JournalEntry(
        kind=kind,
        op_id=str(data["op"]),
        ts=str(data["ts"]),
        action=data.get("action"),
        ok=data.get("ok"),
        result=data.get("result"),
        error=data.get("error"),
    )


_OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "action": (dict, type(None)),
    "ok": (bool, type(None)),
    "result": (dict, type(None)),
    "error": (dict, type(None)),
}


def _describe_error(error: BaseException | str) -> dict[str, str]:
    if isinstance(error, str):
        return {"type": "error", "message": error}
    return {"type": type(error).__name__, "message": str(error)}
