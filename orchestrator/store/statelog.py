"""The state log `state/<project>.state.log.jsonl`: the changes since the state file was written.

Saving the whole state after every action costs O(state) per action. Instead a run appends
one line per change: the records it replaced or removed (by address, or sub-account name),
with the serial it gives the state and the lineage. Loading reads the state file and replays
the lines whose serial comes after it, in order. The log is compacted into the state file
(the readable, validated snapshot, with its backup, serial, lineage and audit head) at the
end of a run, when it grows past a bound, and by the next command that takes the plan's lock;
writing the state file removes the log.

A last line a crash left without its newline is ignored (its fsync never returned, so the
step waiting for it never went on) and cut off before the next append. A damaged line
elsewhere, a gap in the serials or a record no orchestrator writes makes the state unusable:
what came after it cannot be applied safely.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.store.atomic import (
    PRIVATE_FILE,
    fsync_dir,
    repair_torn_tail,
    unlink_durably,
    write_fd_fully,
)
from orchestrator.store.errors import CorruptStateError
from orchestrator.store.plain import canonical_json
from orchestrator.store.state import KeyRecord, State, SubaccountRecord, load_problems

#: the log is compacted once it holds more lines than this, or than the state has records
COMPACT_AFTER = 512


class LogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    serial: int
    lineage: str
    keys: dict[str, KeyRecord | None] = Field(default_factory=dict)
    subaccounts: dict[str, SubaccountRecord | None] = Field(default_factory=dict)
    plan_file: str | None = None  # only when the line sets it


def change_line(before: State, after: State) -> bytes:
    """The log line that takes `before` to `after`: the records that are not the same objects
    (transitions share unchanged records), so its size follows the change, not the state."""
    line: dict[str, Any] = {"serial": after.serial, "lineage": after.lineage}
    keys = _changed(before.keys, after.keys)
    if keys:
        line["keys"] = keys
    subaccounts = _changed(before.subaccounts, after.subaccounts)
    if subaccounts:
        line["subaccounts"] = subaccounts
    if after.plan_file != before.plan_file:
        line["plan_file"] = after.plan_file
    return (canonical_json(line) + "\n").encode()


def _changed(before: Mapping[str, BaseModel], after: Mapping[str, BaseModel]) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    if before is after:
        return changed
    for name, record in after.items():
        old = before.get(name)
        if old is not record and old != record:
            changed[name] = record.model_dump(mode="json")
    for name in before.keys() - after.keys():
        changed[name] = None
    return changed


class StateLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def lines(self) -> tuple[list[bytes], bool]:
        """The complete lines, and whether a torn last line was left out."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return [], False
        pieces = raw.split(b"\n")
        torn = pieces.pop() != b""  # the piece after the last newline
        return [p for p in pieces if p.strip()], torn

    def count(self) -> int:
        return len(self.lines()[0])

    def append(self, lines: list[bytes]) -> None:
        """Append complete lines and fsync once. A torn last line is cut off first."""
        if not lines:
            return
        repair_torn_tail(self.path, lambda _fragment: False)
        created = not self.path.exists()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, PRIVATE_FILE)
        try:
            os.fchmod(fd, PRIVATE_FILE)
            write_fd_fully(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)

    def remove(self) -> None:
        unlink_durably(self.path)

    def replay(self, snapshot: State) -> tuple[State, int]:
        """`snapshot` with the logged changes that come after it, and how many there were.
        Lines of another lineage, or at or below the snapshot's serial, were compacted already
        (or belong to a state since replaced) and are skipped."""
        lines, _torn = self.lines()
        keys, subaccounts = snapshot.keys, snapshot.subaccounts
        plan_file, serial, applied = snapshot.plan_file, snapshot.serial, 0
        for number, line in enumerate(lines, start=1):
            entry = self._parse(line, number)
            if entry.lineage != snapshot.lineage or entry.serial <= snapshot.serial:
                continue
            if entry.serial != serial + 1:
                raise self._corrupt(
                    f"line {number} has serial {entry.serial} where {serial + 1} was expected"
                )
            if applied == 0:
                keys, subaccounts = dict(keys), dict(subaccounts)
            _apply(keys, entry.keys)
            _apply(subaccounts, entry.subaccounts)
            if "plan_file" in entry.model_fields_set:
                plan_file = entry.plan_file
            serial, applied = entry.serial, applied + 1
        if not applied:
            return snapshot, 0
        state = snapshot.model_copy(
            update={
                "keys": keys,
                "subaccounts": subaccounts,
                "plan_file": plan_file,
                "serial": serial,
            }
        )
        problems = load_problems(state)
        if problems:
            raise self._corrupt("; ".join(problems[:3]))
        return state, applied

    def _parse(self, line: bytes, number: int) -> LogEntry:
        try:
            return LogEntry.model_validate_json(line, strict=True)
        except ValidationError:
            raise self._corrupt(f"line {number} is not a state change") from None

    def _corrupt(self, problem: str) -> CorruptStateError:
        return CorruptStateError(
            f"{self.path} cannot be replayed: {problem}. Move it aside (keep it for"
            " inspection): the state file alone is then used, and `orchestrator state"
            " rebuild` brings it up to date from the live keys.",
            str(self.path),
        )


def _apply(records: dict, changes: dict) -> None:
    for name, record in changes.items():
        if record is None:
            records.pop(name, None)
        else:
            records[name] = record


@dataclass(frozen=True)
class StateChange:
    """An item for `StateWriter`: the state after a change, and its log line (None asks for
    the state file itself to be written)."""

    state: State
    line: bytes | None


class StateWriter:
    """The group-commit target for state: appends log lines, writes the state file when asked,
    when there is none yet, and when the log has grown past its bound."""

    def __init__(
        self, log: StateLog, save: Callable[[State], State], has_snapshot: Callable[[], bool]
    ) -> None:
        self.log = log
        self.save = save
        self.has_snapshot = has_snapshot
        self._logged: int | None = None  # lines in the log, once read

    def write_group(self, items: list[StateChange]) -> list[State | None]:
        results: list[State | None] = [None] * len(items)
        pending: list[bytes] = []
        if self._logged is None:
            self._logged = self.log.count() if self.has_snapshot() else 0
        for index, item in enumerate(items):
            if item.line is None or not self.has_snapshot():
                results[index] = self.save(item.state)  # removes the log it covers
                pending, self._logged = [], 0
            else:
                pending.append(item.line)
        if pending:
            self.log.append(pending)
            self._logged += len(pending)
            last = items[-1].state
            if self._logged > max(COMPACT_AFTER, len(last.keys) + len(last.subaccounts)):
                self.save(last)
                self._logged = 0
        return results
