"""Moving a project's store between the local files and PostgreSQL, with nothing lost.

Everything one backend keeps goes: each project's state, every earlier version of it, its
write-ahead journal (an open intent is reconciled by the next run, on the new backend), and
the audit log, line for line, so its hash chain and the heads the states anchored stay valid.
The move itself is then recorded on the new backend, as the next link of that chain.

The target must hold nothing yet. Under every project's lock on both sides: the state logs
are folded into the states, the copy is made, the move is audited, and only then is the
source retired: the local files go to `state/moved-to-postgres-<time>/` beside a
`state/moved.json` marker, or the schema's rows are deleted and a marker row says where they
went. A plan that still names the old backend is refused (StateMoved), never started afresh.
A move interrupted after the copy is finished by running it again: a target that holds
exactly the source plus the move's audit line is recognised.
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.store.atomic import atomic_rename, atomic_write, ensure_private_dir, fsync_dir
from orchestrator.store.backend import StateBackend
from orchestrator.store.errors import StateMoved, StoreError
from orchestrator.store.files import MOVED_MARKER, LocalFileBackend, parse_state
from orchestrator.store.journal import parse_line
from orchestrator.store.lock import current_user, host_name
from orchestrator.store.postgres import PostgresBackend
from orchestrator.store.state import State

HISTORY_SUFFIX = ".state.history"
MOVE_ACTION = "state_migrate"

Backend = LocalFileBackend | PostgresBackend


@dataclass
class ProjectRecords:
    plan: str
    state: bytes | None = None
    history: list[bytes] = field(default_factory=list)  # oldest first
    journal: list[bytes] = field(default_factory=list)


@dataclass
class StoreRecords:
    projects: list[ProjectRecords]
    audit: list[bytes]

    def holds_anything(self) -> bool:
        return bool(self.audit) or any(p.state or p.journal for p in self.projects)


@dataclass(frozen=True)
class Moved:
    projects: tuple[str, ...]
    versions: int
    journal_entries: int
    audit_lines: int
    resumed: bool


class MoveRefused(StoreError):
    """The move cannot start: the target holds a store, or the source is not sound."""


def movable(backend: StateBackend) -> Backend:
    """`backend` as one of the two this module moves between."""
    if not isinstance(backend, LocalFileBackend | PostgresBackend):
        raise TypeError(f"cannot move the store of a {type(backend).__name__}")
    return backend


def describe(backend: Backend) -> str:
    if isinstance(backend, PostgresBackend):
        return f"PostgreSQL at {backend.store.target}"
    return f"the local files in {backend.state_dir}"


def move_store(source: Backend, target: Backend, command: str = "state migrate") -> Moved:
    """Move every project `source` keeps to `target` (see the module's docstring)."""
    with ExitStack() as locks:
        plans = project_names(source)
        if not plans:
            raise MoveRefused(f"{describe(source)} holds no state to move")
        for plan in plans:
            locks.enter_context(source.lock(plan, command))
            locks.enter_context(target.lock(plan, command))
        for plan in plans:
            _compact(source, plan)
        records = export(source)
        _check_sound(records, source)
        existing = export(target)
        resumed = existing.holds_anything()
        if resumed and not _is_copy_of(existing, records):
            raise MoveRefused(
                f"{describe(target)} already holds a store"
                f" ({_summary(existing)}): a move goes only to an empty one. Choose another"
                " schema, or move that store away first."
            )
        if not resumed:
            import_records(target, records)
            target.audit(command).append(
                MOVE_ACTION,
                detail={"from": describe(source), "to": describe(target), "projects": plans},
            )
        retire(source, describe(target))
    return Moved(
        projects=tuple(plans),
        versions=sum(len(p.history) for p in records.projects),
        journal_entries=sum(len(p.journal) for p in records.projects),
        audit_lines=len(records.audit),
        resumed=resumed,
    )


def _compact(backend: Backend, plan: str) -> None:
    try:
        backend.compact(plan)
    except StateMoved:
        raise
    except StoreError as exc:
        raise MoveRefused(f"cannot move an unusable state: {exc}") from None


def _check_sound(records: StoreRecords, source: Backend) -> None:
    """A store is moved only when what it holds can be read back on the other side."""
    for project in records.projects:
        if project.state is not None and not isinstance(parse_state(project.state), State):
            raise MoveRefused(
                f"the state of {project.plan!r} in {describe(source)} is not usable:"
                " restore or rebuild it before moving it"
            )
        if any(parse_line(line) is None for line in project.journal):
            raise MoveRefused(
                f"the journal of {project.plan!r} in {describe(source)} has damaged entries:"
                " run `orchestrator apply` (which reconciles and clears it) before moving"
            )
    result = source.verify_audit()
    if not result.ok:
        raise MoveRefused(
            f"the audit log in {describe(source)} does not verify (line"
            f" {result.first_bad_line}: {result.reason}); a move must not carry a broken"
            " chain. Run `orchestrator log verify` and keep the log for inspection."
        )


def _is_copy_of(existing: StoreRecords, records: StoreRecords) -> bool:
    """Whether `existing` is `records` copied by a move that stopped before retiring its
    source: the same lines, and the move's own audit line after them."""
    if existing.audit[:-1] != records.audit or not existing.audit:
        return False
    if json.loads(existing.audit[-1]).get("action") != MOVE_ACTION:
        return False
    mine = {p.plan: (p.state, p.history, p.journal) for p in records.projects}
    theirs = {p.plan: (p.state, p.history, p.journal) for p in existing.projects}
    return mine == theirs


def _summary(records: StoreRecords) -> str:
    states = sum(1 for p in records.projects if p.state)
    return f"{states} project state(s), {len(records.audit)} audit lines"


# ---------------------------------------------------------------- reading


def project_names(backend: Backend) -> list[str]:
    if isinstance(backend, PostgresBackend):
        with backend.store.tx() as conn:
            rows = conn.execute(
                backend.store.q(
                    "SELECT project FROM {s} UNION SELECT project FROM {j}"
                    " UNION SELECT project FROM {l} ORDER BY 1",
                    s="states",
                    j="journal",
                    l="state_log",
                )
            ).fetchall()
        return [row[0] for row in rows]
    names = set()
    for suffix in (".state.json", ".journal.jsonl", ".state.log.jsonl"):
        names |= {p.name[: -len(suffix)] for p in backend.state_dir.glob(f"*{suffix}")}
    return sorted(names)


def export(backend: Backend) -> StoreRecords:
    if isinstance(backend, PostgresBackend):
        return _export_postgres(backend)
    return _export_local(backend)


def _export_local(backend: LocalFileBackend) -> StoreRecords:
    projects = []
    for plan in project_names(backend):
        history = [p.read_bytes() for p in _history_files(backend, plan)]
        backup = backend.backup_path(plan)
        if backup.exists():
            history.append(backup.read_bytes())
        state_path = backend.state_path(plan)
        projects.append(
            ProjectRecords(
                plan,
                state=state_path.read_bytes() if state_path.exists() else None,
                history=history,
                journal=_complete_lines(backend.journal_path(plan)),
            )
        )
    return StoreRecords(projects, _complete_lines(backend.audit_path))


def _history_files(backend: LocalFileBackend, plan: str) -> list[Path]:
    """Earlier versions older than the backup, kept as `<n>.json` (oldest first) by a move
    from PostgreSQL: the local backend itself keeps one backup."""
    directory = backend.state_dir / f"{plan}{HISTORY_SUFFIX}"
    found = [p for p in directory.glob("*.json") if re.fullmatch(r"\d+\.json", p.name)]
    return sorted(found, key=lambda p: int(p.stem))


def _complete_lines(path: Path) -> list[bytes]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    pieces = raw.split(b"\n")
    pieces.pop()  # the empty piece after the last newline, or a torn line never acknowledged
    return [piece for piece in pieces if piece.strip()]


def _export_postgres(backend: PostgresBackend) -> StoreRecords:
    store = backend.store
    projects = []
    with store.tx() as conn:
        for plan in project_names(backend):
            state = conn.execute(
                store.q("SELECT body FROM {t} WHERE project = %s", t="states"), (plan,)
            ).fetchone()
            history = conn.execute(
                store.q(
                    "SELECT body FROM {t} WHERE project = %s ORDER BY version", t="state_history"
                ),
                (plan,),
            ).fetchall()
            journal = conn.execute(
                store.q("SELECT line FROM {t} WHERE project = %s ORDER BY position", t="journal"),
                (plan,),
            ).fetchall()
            projects.append(
                ProjectRecords(
                    plan,
                    state=state[0].encode() if state else None,
                    history=[row[0].encode() for row in history],
                    journal=[row[0].encode() for row in journal],
                )
            )
        audit = conn.execute(store.q("SELECT line FROM {t} ORDER BY seq", t="audit")).fetchall()
    return StoreRecords(projects, [row[0].encode() for row in audit])


# ---------------------------------------------------------------- writing


def import_records(target: Backend, records: StoreRecords) -> None:
    if isinstance(target, PostgresBackend):
        _import_postgres(target, records)
    else:
        _import_local(target, records)


def _import_postgres(target: PostgresBackend, records: StoreRecords) -> None:
    """All of it in one transaction: a failed move leaves the schema as it was."""
    store = target.store
    with store.tx() as conn:
        conn.execute(store.q("DELETE FROM {t}", t="moved"))
        for project in records.projects:
            for version, body in enumerate(project.history, start=1):
                parsed = _parsed(body)
                conn.execute(
                    store.q(
                        "INSERT INTO {t} (project, version, lineage, serial, body, saved_at)"
                        " VALUES (%s, %s, %s, %s, %s, now())",
                        t="state_history",
                    ),
                    (project.plan, version, parsed.lineage, parsed.serial, body.decode()),
                )
            if project.state is not None:
                parsed = _parsed(project.state)
                conn.execute(
                    store.q(
                        "INSERT INTO {t} (project, lineage, serial, body) VALUES (%s, %s, %s, %s)",
                        t="states",
                    ),
                    (project.plan, parsed.lineage, parsed.serial, project.state.decode()),
                )
            for position, line in enumerate(project.journal, start=1):
                conn.execute(
                    store.q(
                        "INSERT INTO {t} (project, position, line) VALUES (%s, %s, %s)",
                        t="journal",
                    ),
                    (project.plan, position, line.decode()),
                )
        offset = 0
        for seq, line in enumerate(records.audit, start=1):
            conn.execute(
                store.q("INSERT INTO {t} (seq, line_offset, line) VALUES (%s, %s, %s)", t="audit"),
                (seq, offset, line.decode()),
            )
            offset += len(line) + 1


def _import_local(target: LocalFileBackend, records: StoreRecords) -> None:
    """Each file written atomically; the states last, so a state never points at a journal
    or history that is not there yet."""
    ensure_private_dir(target.state_dir)
    if records.audit:
        atomic_write(target.audit_path, b"".join(line + b"\n" for line in records.audit))
    for project in records.projects:
        *older, backup = project.history or [b""]
        if older:
            directory = target.state_dir / f"{project.plan}{HISTORY_SUFFIX}"
            ensure_private_dir(directory)
            for version, body in enumerate(older, start=1):
                _parsed(body)
                atomic_write(directory / f"{version}.json", body)
        if backup:
            atomic_write(target.backup_path(project.plan), backup)
        if project.journal:
            atomic_write(
                target.journal_path(project.plan),
                b"".join(line + b"\n" for line in project.journal),
            )
        if project.state is not None:
            atomic_write(target.state_path(project.plan), project.state)
    (target.state_dir / MOVED_MARKER).unlink(missing_ok=True)
    fsync_dir(target.state_dir)


def _parsed(body: bytes) -> State:
    parsed = parse_state(body)
    if not isinstance(parsed, State):
        raise MoveRefused(f"an earlier version of a state is not usable: {parsed}")
    return parsed


# ---------------------------------------------------------------- retiring the source


def retire(source: Backend, destination: str) -> None:
    if isinstance(source, PostgresBackend):
        _retire_postgres(source, destination)
    else:
        _retire_local(source, destination)


def _retire_postgres(source: PostgresBackend, destination: str) -> None:
    store = source.store
    with store.tx() as conn:
        for table in ("states", "state_history", "state_log", "journal", "audit"):
            conn.execute(store.q("DELETE FROM {t}", t=table))
        conn.execute(
            store.q(
                "INSERT INTO {t} (destination, moved_by) VALUES (%s, %s)"
                " ON CONFLICT (only_row) DO UPDATE SET destination = excluded.destination,"
                " moved_at = now(), moved_by = excluded.moved_by",
                t="moved",
            ),
            (destination, f"{current_user()}@{host_name()}"),
        )


def _retire_local(source: LocalFileBackend, destination: str) -> None:
    """The store's files go aside (kept, not deleted); the marker makes the local backend
    refuse to start afresh where they were."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = source.state_dir / f"moved-to-postgres-{stamp}"
    ensure_private_dir(aside)
    atomic_write(
        source.state_dir / MOVED_MARKER,
        json.dumps(
            {
                "moved_to": destination,
                "moved_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "moved_by": f"{current_user()}@{host_name()}",
                "files_kept_in": aside.name,
            },
            indent=2,
        ).encode()
        + b"\n",
    )
    for path in sorted(source.state_dir.iterdir()):
        if _store_file(path.name):
            atomic_rename(path, aside / path.name)


def _store_file(name: str) -> bool:
    return name == "audit.jsonl" or name.endswith(
        (".state.json", ".state.json.backup", ".state.log.jsonl", ".journal.jsonl", HISTORY_SUFFIX)
    )
