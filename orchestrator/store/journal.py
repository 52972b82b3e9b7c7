"""The write-ahead journal `state/<plan>.journal.jsonl`.

Before each mutating call the engine writes an *intent*; after it, an *outcome*. Both are
fsynced, so after a crash `pending()` lists exactly the calls whose effect is unknown and
must be reconciled against live state. A line torn by a crash mid-write is ignored.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.store.atomic import (
    PRIVATE_FILE,
    fsync_dir,
    repair_torn_tail,
    unlink_durably,
    write_fd_fully,
)
from orchestrator.store.errors import CorruptJournalError
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


def _is_json_line(fragment: bytes) -> bool:
    try:
        json.loads(fragment)
    except ValueError:
        return False
    return True


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._mutex = threading.Lock()

    def intent(self, op_id: str, action: dict[str, Any]) -> None:
        """Record, durably, that the call described by `action` is about to be made."""
        self._append({"kind": "intent", "op": op_id, "action": ensure_plain(action, "action")})

    def outcome(
        self,
        op_id: str,
        result: dict[str, Any] | None = None,
        error: BaseException | str | None = None,
    ) -> None:
        """Record how the call `op_id` ended: a plain `result`, or an `error`."""
        record: dict[str, Any] = {"kind": "outcome", "op": op_id, "ok": error is None}
        if result is not None:
            record["result"] = ensure_plain(result, "result")
        if error is not None:
            record["error"] = _describe_error(error)
        self._append(record)

    def entries(self) -> list[JournalEntry]:
        """Every complete entry in order; a torn last line is skipped."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = raw.split(b"\n")
        entries = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entries.append(_entry(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                if number == len(lines):  # no newline after it: torn by a crash
                    continue
                raise CorruptJournalError(
                    f"{self.path} line {number} is not a journal entry ({type(exc).__name__});"
                    " the journal cannot be trusted: reconcile with `orchestrator state rebuild`"
                ) from None
        return entries

    def pending(self) -> list[JournalEntry]:
        """Intents that have no outcome: calls whose effect is unknown after a crash."""
        entries = self.entries()
        finished = {e.op_id for e in entries if e.kind == "outcome"}
        return [e for e in entries if e.kind == "intent" and e.op_id not in finished]

    def clear(self) -> None:
        """Forget everything once reconciled; one unlink, so a crash leaves all or nothing."""
        with self._mutex:
            unlink_durably(self.path)

    def _append(self, record: dict[str, Any]) -> None:
        record["ts"] = datetime.now(UTC).isoformat(timespec="microseconds")
        line = (canonical_json(record) + "\n").encode()
        with self._mutex:
            repair_torn_tail(self.path, _is_json_line)
            created = not self.path.exists()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(self.path, flags, PRIVATE_FILE)
            try:
                os.fchmod(fd, PRIVATE_FILE)
                write_fd_fully(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.path.parent)


def _entry(data: dict[str, Any]) -> JournalEntry:
    kind = data["kind"]
    if kind not in ("intent", "outcome"):
        raise ValueError(kind)
    return JournalEntry(
        kind=kind,
        op_id=str(data["op"]),
        ts=str(data["ts"]),
        action=data.get("action"),
        ok=data.get("ok"),
        result=data.get("result"),
        error=data.get("error"),
    )


def _describe_error(error: BaseException | str) -> dict[str, str]:
    if isinstance(error, str):
        return {"type": "error", "message": error}
    return {"type": type(error).__name__, "message": str(error)}
