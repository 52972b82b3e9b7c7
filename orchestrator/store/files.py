"""The local-files backend: everything under the project directory's `state/`, named by the
plan's project id.

state/<project>.state.json          the state (0600), replaced atomically
state/<project>.state.json.backup   the version before the last save
state/<project>.state.log.jsonl     the changes since the last save, replayed on load
state/<project>.lock                the plan lock
state/<project>.journal.jsonl       the write-ahead journal
state/audit.jsonl                   the audit log, shared by all plans
state/moved.json                    where the store went, after `state migrate --to postgres`

A plan with several master accounts keeps each account's state, lock and journal under the
state id `<project>@<account>`, and its audit log in `state/audit@<account>.jsonl`: one
backend per account (`LocalFileBackend(dir, account=...)`), whose log's heads only that
account's states anchor.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from orchestrator.store.atomic import atomic_write, ensure_private_dir, fsync_dir
from orchestrator.store.audit import Anchor, AuditLog, VerifyResult, holds, read_head, verify
from orchestrator.store.errors import (
    CorruptStateError,
    LineageMismatch,
    NoBackupError,
    StaleStateError,
    StateMoved,
)
from orchestrator.store.journal import Journal
from orchestrator.store.lock import LockInfo, PlanLock
from orchestrator.store.state import STATE_FORMAT_VERSION, AuditHead, State, load_problems
from orchestrator.store.statelog import StateLog, StateWriter

STATE_DIR = "state"
AUDIT_FILE = "audit.jsonl"
#: written where the store was when it is moved to PostgreSQL (`state migrate`)
MOVED_MARKER = "moved.json"


def new_state(plan: str) -> State:
    """An empty state for a plan that has none yet, with a fresh lineage."""
    return State(lineage=str(uuid.uuid4()), serial=0, plan=plan)


def next_serial(state: State) -> State:
    """A copy of `state` ready to save over the one it was loaded as."""
    return state.model_copy(update={"serial": state.serial + 1})


class LocalFileBackend:
    def __init__(self, project_dir: Path, account: str | None = None) -> None:
        """`account`: the master account whose audit log this backend keeps (None: a plan
        without `accounts:`)."""
        self.project_dir = Path(project_dir)
        self.state_dir = self.project_dir / STATE_DIR
        self.account = account
        self._written: dict[Path, tuple[tuple | None, Identity]] = {}

    # paths

    def state_path(self, plan: str) -> Path:
        return self.state_dir / f"{_plan_file_name(plan)}.state.json"

    def backup_path(self, plan: str) -> Path:
        return self.state_dir / f"{_plan_file_name(plan)}.state.json.backup"

    def lock_path(self, plan: str) -> Path:
        return self.state_dir / f"{_plan_file_name(plan)}.lock"

    def state_log_path(self, plan: str) -> Path:
        return self.state_dir / f"{_plan_file_name(plan)}.state.log.jsonl"

    def journal_path(self, plan: str) -> Path:
        return self.state_dir / f"{_plan_file_name(plan)}.journal.jsonl"

    @property
    def audit_path(self) -> Path:
        return self.state_dir / audit_file_name(self.account)

    def describe(self, plan: str) -> Path:
        return self.state_path(plan)

    # state

    def load_state(self, plan: str, expected_lineage: str | None = None) -> State | None:
        """The saved state of `plan` with the changes logged since, or None when it has none.

        Raises CorruptStateError for an unreadable file (or state log) and LineageMismatch
        when the file belongs to another plan or to another lineage than `expected_lineage`.
        """
        loaded = self._load(plan, expected_lineage)
        if loaded is None:
            self._refuse_if_moved()
            return None
        return loaded[0]

    def _refuse_if_moved(self) -> None:
        """No state here: if the store was moved to PostgreSQL, starting afresh would make
        every key anew, so the plan must name the backend the store is in now."""
        try:
            moved = json.loads((self.state_dir / MOVED_MARKER).read_bytes())
        except FileNotFoundError:
            return
        except ValueError:
            moved = {}
        raise StateMoved(
            f"the store in {self.state_dir} was moved to {moved.get('moved_to', 'PostgreSQL')}"
            f" on {moved.get('moved_at', 'an unknown date')} by {moved.get('moved_by', '?')}"
            f" (see {STATE_DIR}/{MOVED_MARKER}). Set the plan's `backend:` to"
            " {kind: postgres, ...} to use it there."
        )

    def audit_name(self) -> str:
        return f"{STATE_DIR}/{audit_file_name(self.account)}"

    def _load(self, plan: str, expected_lineage: str | None = None) -> tuple[State, int] | None:
        path = self.state_path(plan)
        state = self._read(path, plan)
        if state is None:
            return None
        check_belongs(state, plan, expected_lineage, path)
        return StateLog(self.state_log_path(plan)).replay(state)

    def compact(self, plan: str) -> State | None:
        """Fold the state log into the state file, if it holds changes. Returns the state."""
        loaded = self._load(plan)
        if loaded is None:
            return None
        state, changes = loaded
        return self.save_state(state) if changes else state

    def state_writer(self, plan: str) -> StateWriter:
        """The group-commit target that records a run's state changes in the state log."""
        ensure_private_dir(self.state_dir)
        return StateWriter(
            StateLog(self.state_log_path(plan)),
            save=self.save_state,
            has_snapshot=self.state_path(plan).exists,
        )

    def save_state(self, state: State) -> State:
        """Write `state` atomically, keeping the previous version as the backup.

        The serial must be greater than the stored one (else StaleStateError: someone saved
        in between); the lineage must match the stored one. A state without a lineage gets
        a fresh one on its first save. The state records the audit log's head as of this
        save (see `_anchored`). The state log, which the saved state covers, is removed.
        Returns the state as written.
        """
        if not state.lineage:
            state = state.model_copy(update={"lineage": str(uuid.uuid4())})
        state = self._anchored(state)
        path = self.state_path(state.plan)
        ensure_private_dir(self.state_dir)
        stored = self._stored_identity(path, state.plan)
        if stored is not None:
            check_successor(stored, state, path)
        elif state.serial < 1:
            raise StaleStateError(
                f"refusing to save {path} with serial {state.serial}: serials start at 1"
                " (save next_serial(state))"
            )
        if stored is not None:
            _link_backup(path, self.backup_path(state.plan))
        atomic_write(path, render_state(state))
        self._written[path] = (_signature(path), Identity(state.lineage, state.serial))
        StateLog(self.state_log_path(state.plan)).remove()
        return state

    def _anchored(self, state: State) -> State:
        """`state` with the audit log's current head. An anchor the log no longer holds (it
        was cut short or rewritten) is kept as it is, so the next save cannot erase the
        evidence that `log verify` reports."""
        previous = state.audit_head
        if previous is not None and not holds(self.audit_path, previous):
            return state
        head = read_head(self.audit_path)
        if head is None or head == previous:
            return state
        return state.model_copy(update={"audit_head": head})

    def _stored_identity(self, path: Path, plan: str):
        """Lineage and serial of the stored state. Re-reading a file this backend wrote
        itself (unchanged since, by its inode, size and mtime) is skipped: at a thousand keys
        parsing it again cost more than the write."""
        remembered = self._written.get(path)
        if remembered is not None and remembered[0] == _signature(path):
            return remembered[1]
        return self._read(path, plan)

    def restore_backup(self, plan: str) -> State:
        """Put the backup back in place (the damaged file is kept beside it) and return it."""
        backup = self.backup_path(plan)
        state = self._read_backup(backup, plan)
        path = self.state_path(plan)
        if path.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            path.rename(path.with_name(f"{path.name}.damaged-{stamp}"))
        atomic_write(path, backup.read_bytes())
        fsync_dir(self.state_dir)
        StateLog(self.state_log_path(plan)).remove()
        return state

    # lock, journal, audit

    def lock(self, plan: str, command: str, force_break_stale: bool = False) -> PlanLock:
        """The plan's lock; taking it over from a holder that is gone goes in the audit log."""
        ensure_private_dir(self.state_dir)

        def record_takeover(previous: LockInfo | None, reason: str) -> None:
            who = previous.describe() if previous else "an unreadable lock file"
            self.audit(command).append(
                "lock_takeover",
                detail={"plan": plan, "previous_holder": who, "reason": reason},
            )

        return PlanLock(
            self.lock_path(plan), command, force_break_stale, on_takeover=record_takeover
        )

    def journal(self, plan: str) -> Journal:
        ensure_private_dir(self.state_dir)
        return Journal(self.journal_path(plan))

    def audit(self, command: str) -> AuditLog:
        ensure_private_dir(self.state_dir)
        return AuditLog(self.audit_path, command)

    def audit_head(self) -> str | None:
        """The hash of the audit log's last line; None when there is no sound one."""
        head = read_head(self.audit_path)
        return head.hash if head else None

    def verify_audit(self) -> VerifyResult:
        """Check the audit log's chain and that it still holds every head a state anchored."""
        return verify(self.audit_path, self._audit_anchors())

    def _audit_anchors(self) -> list[Anchor]:
        """The audit head each plan's state recorded. Read leniently: a state file that is
        unusable for other reasons still vouches for the log."""
        anchors = []
        for path in sorted(self.state_dir.glob("*.state.json")):
            if _account_of_state_file(path) != self.account:
                continue
            try:
                head = json.loads(path.read_bytes()).get("audit_head")
                if head is not None:
                    anchors.append(
                        Anchor(f"{STATE_DIR}/{path.name}", AuditHead.model_validate(head))
                    )
            except (OSError, ValueError, AttributeError):
                continue
        return anchors

    # reading

    def _read(self, path: Path, plan: str) -> State | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        problem = parse_state(raw)
        if isinstance(problem, State):
            return problem
        if problem is NEWER:
            raise CorruptStateError(_newer_message(path), str(path))
        raise CorruptStateError(
            self._corrupt_message(path, plan, problem), str(path), self._usable_backup(plan)
        )

    def _read_backup(self, backup: Path, plan: str) -> State:
        try:
            raw = backup.read_bytes()
        except FileNotFoundError:
            raise NoBackupError(f"there is no backup of the state at {backup}") from None
        parsed = parse_state(raw)
        if not isinstance(parsed, State):
            raise NoBackupError(f"the backup {backup} is not usable either: {parsed}")
        check_belongs(parsed, plan, None, backup)
        return parsed

    def _usable_backup(self, plan: str) -> str | None:
        backup = self.backup_path(plan)
        try:
            self._read_backup(backup, plan)
        except (NoBackupError, LineageMismatch):
            return None
        return str(backup)

    def _corrupt_message(self, path: Path, plan: str, problem: str) -> str:
        message = (
            f"{path} is not a valid state file: {problem}. Was it truncated or edited by hand?"
        )
        backup = self._usable_backup(plan)
        if backup:
            message += (
                f" The previous version is in {backup}: restore it with"
                f" `orchestrator state restore` (or copy it over {path.name}),"
                " then run `orchestrator plan` to see what changed since."
            )
        else:
            message += (
                f" There is no usable backup: move {path.name} aside (keep it for inspection),"
                " then rebuild the state from the live keys with `orchestrator state rebuild`."
            )
        return message


def audit_file_name(account: str | None) -> str:
    """The audit log of a master account: `audit@<account>.jsonl`, or `audit.jsonl` for
    plans without `accounts:`."""
    return AUDIT_FILE if account is None else f"audit@{account}.jsonl"


def accounts_with_audit_logs(project_dir: Path) -> list[str | None]:
    """The accounts with an audit log or a state (whose anchor says a log should exist)
    under `project_dir`; None stands for `audit.jsonl`, the log of plans without accounts."""
    state_dir = Path(project_dir) / STATE_DIR
    found: set[str | None] = {_account_of_state_file(p) for p in state_dir.glob("*.state.json")}
    if (state_dir / AUDIT_FILE).exists():
        found.add(None)
    for path in state_dir.glob("audit@*.jsonl"):
        found.add(path.name.removeprefix("audit@").removesuffix(".jsonl"))
    return sorted(found, key=lambda account: (account is not None, account or ""))


def _account_of_state_file(path: Path) -> str | None:
    """`fund2` for `state/desk@fund2.state.json`, None for `state/desk.state.json`."""
    state_id = path.name.removesuffix(".state.json")
    return state_id.partition("@")[2] or None


def _plan_file_name(plan: str) -> str:
    if not plan or "/" in plan or "\\" in plan or plan.startswith("."):
        raise ValueError(f"{plan!r} is not a usable plan name for a state file")
    return plan


def render_state(state: State) -> bytes:
    return (state.model_dump_json(indent=2) + "\n").encode()


NEWER = "it was written by a newer orchestrator"


def _newer_message(path: Path) -> str:
    return (
        f"{path} was written by a newer orchestrator (its version field is above"
        f" {STATE_FORMAT_VERSION}, the state format this one reads). Upgrade orchestrator;"
        " restoring or rebuilding it would lose what the newer version recorded."
    )


def parse_state(raw: bytes) -> State | str:
    """The parsed state, or a one-line description of what is wrong with the bytes.

    Parsing is strict (no "7" for 7) and then checks values that no orchestrator writes, so
    a hand-edited or foreign file is refused here rather than misread later."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})"
    if not isinstance(data, dict):
        return "it does not hold a JSON object"
    version = data.get("version")
    if type(version) is int and version > STATE_FORMAT_VERSION:
        return NEWER
    try:
        state = State.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        return _summarise(exc)
    problems = load_problems(state)
    return _first_three(problems) if problems else state


def _summarise(exc: ValidationError) -> str:
    return _first_three(
        [
            f"{'.'.join(str(part) for part in err['loc']) or 'top level'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        ]
    )


def _first_three(problems: list[str]) -> str:
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def check_belongs(state: State, plan: str, expected_lineage: str | None, path: Path | str) -> None:
    if state.plan != plan:
        raise LineageMismatch(
            f"{path} belongs to plan {state.plan!r} (lineage {state.lineage}), not {plan!r}:"
            " was a state file copied or renamed? Move it back, or rebuild this plan's"
            " state with `orchestrator state rebuild`."
        )
    if expected_lineage is not None and state.lineage != expected_lineage:
        raise LineageMismatch(
            f"{path} has lineage {state.lineage}, expected {expected_lineage}: it is a"
            " different history of this plan (recreated or restored from elsewhere)."
            " Run `orchestrator plan` again against the state as it is now."
        )


@dataclass(frozen=True)
class Identity:
    lineage: str
    serial: int


def _signature(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _link_backup(path: Path, backup: Path) -> None:
    """Keep the current file as the backup without copying it: a hard link, renamed into
    place, so the backup is always a complete earlier version."""
    staging = backup.with_name(f".{backup.name}.{uuid.uuid4().hex[:12]}.tmp")
    os.link(path, staging)
    try:
        os.replace(staging, backup)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def check_successor(stored: State | Identity, state: State, path: Path | str) -> None:
    if stored.lineage != state.lineage:
        raise LineageMismatch(
            f"refusing to overwrite {path}: it has lineage {stored.lineage}, this state has"
            f" {state.lineage}. They are different histories; the stored one was not loaded."
        )
    if state.serial <= stored.serial:
        raise StaleStateError(
            f"refusing to overwrite {path}: it is at serial {stored.serial}, this state is at"
            f" {state.serial}. Someone saved it since it was loaded; run the command again."
        )
