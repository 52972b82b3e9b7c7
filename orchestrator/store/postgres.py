"""The PostgreSQL backend: state, lock, journal and audit log in one schema, for teams whose
operators and CI runners share an account.

The guarantees are the local backend's, made by the database instead of the file system:

- state: the snapshot in `states` (serial and lineage checked under a row lock, so a save
  that lost a race is refused), every version it replaced in `state_history`, and the changes
  since the snapshot in `state_log`, replayed on load exactly as the local state log is;
- the lock (`pg_lock`): a session-level advisory lock on a connection of its own, held for the
  run, so the server releases it when the process dies; a row in `lock_holders` says who holds
  it;
- the journal and the audit log: their lines in tables; each group of lines is one
  transaction, so one commit (one WAL flush) makes a group durable, as one fsync does for a
  file. Audit appends take a table lock, so runs of different projects chain one log; each
  row keeps the byte offset its line would have in `audit.jsonl`, so a state's audit head
  reads the same on both backends and a move between them keeps the anchors.

The driver is psycopg 3, synchronous: the store protocol is synchronous and the engine's group
commit already writes from a worker thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from orchestrator.store.audit import (
    GENESIS,
    Anchor,
    AuditEvents,
    VerifyResult,
    chained,
    sound_event,
    verify_bytes,
)
from orchestrator.store.errors import (
    CorruptStateError,
    NoBackupError,
    StaleStateError,
    StateMoved,
    StoreError,
)
from orchestrator.store.files import (
    NEWER,
    Identity,
    check_belongs,
    check_successor,
    parse_state,
    render_state,
)
from orchestrator.store.journal import Journal, JournalReading, parse_line
from orchestrator.store.lock import LockInfo
from orchestrator.store.pg_schema import migrate
from orchestrator.store.plain import canonical_json
from orchestrator.store.state import STATE_FORMAT_VERSION, AuditHead, State
from orchestrator.store.statelog import StateLog, StateWriter

if TYPE_CHECKING:
    from orchestrator.store.pg_lock import PgPlanLock

DEFAULT_DSN_ENV = "ORCHESTRATOR_PG_DSN"
DEFAULT_SCHEMA = "orchestrator"
CONNECT_TIMEOUT_S = 10


class BackendUnavailable(StoreError):
    """The backend the plan names cannot be used: no DSN in the environment, or no server."""


def safe_target(dsn: str) -> str:
    """`postgresql://user@host:port/db` for messages: never the password or other options."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "an unparsable DSN"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = parts.get("host") or parts.get("hostaddr") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


def _scrub(message: str, dsn: str) -> str:
    """A driver message without the DSN's password, should the driver ever quote it."""
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        password = None
    message = " ".join(message.split()).rstrip(".").replace(dsn, safe_target(dsn))
    return message.replace(str(password), "***") if password else message


class PgStore:
    """One schema on one server: a connection for the store's transactions (thread-safe: the
    group-commit worker and the command share it), and new connections for locks."""

    def __init__(self, dsn: str, schema: str = DEFAULT_SCHEMA, *, source: str = "the DSN"):
        self.dsn = dsn
        self.schema = schema
        self.source = source  # where the DSN came from, for messages
        self._conn: psycopg.Connection | None = None
        self._mutex = threading.RLock()

    @property
    def target(self) -> str:
        return f"{safe_target(self.dsn)} (schema {self.schema})"

    def connect(self, **options: Any) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="orchestrator",
                **options,
            )
        except psycopg.Error as exc:
            raise BackendUnavailable(
                f"cannot reach PostgreSQL at {safe_target(self.dsn)} (DSN from {self.source}):"
                f" {_scrub(str(exc), self.dsn)}; check that the server runs and accepts this"
                " user, and that the variable holds the right DSN."
            ) from None

    def open(self) -> PgStore:
        """Connect and bring the schema up to date."""
        with self._mutex:
            if self._conn is None or self._conn.closed:
                conn = self.connect()
                try:
                    migrate(conn, self.schema)
                except psycopg.Error as exc:
                    conn.close()
                    raise self._failure(exc) from None
                self._conn = conn
        return self

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def tx(self) -> Iterator[psycopg.Connection]:
        """One transaction on the store's connection; driver errors become StoreErrors."""
        with self._mutex:
            conn = self.open()._conn
            assert conn is not None
            try:
                with conn.transaction():
                    yield conn
            except psycopg.Error as exc:
                raise self._failure(exc) from None

    def table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    def q(self, text: str, **tables: str) -> sql.Composed:
        """`text` with `{name}` replaced by this schema's table `name`."""
        return sql.SQL(text).format(**{k: self.table(v) for k, v in tables.items()})  # type: ignore[arg-type]

    def _failure(self, exc: psycopg.Error) -> StoreError:
        return StoreError(
            f"PostgreSQL at {self.target} failed: {_scrub(str(exc), self.dsn)}. Run the"
            " command again once the server is reachable: it reconciles whatever the failed"
            " step left from the journal and the live account."
        )


def open_store(
    dsn_env: str = DEFAULT_DSN_ENV,
    schema: str = DEFAULT_SCHEMA,
    environ: Mapping[str, str] | None = None,
) -> PgStore:
    """The store the environment variable `dsn_env` points at, connected and migrated."""
    environ = os.environ if environ is None else environ
    dsn = environ.get(dsn_env, "").strip()
    if not dsn:
        raise BackendUnavailable(
            f"the plan's backend is postgres, but the environment variable {dsn_env} is not"
            f" set. Export it with the server's DSN, e.g. {dsn_env}=postgresql://USER@HOST:5432/DB"
            " (the DSN, with any password, never goes in the plan file)."
        )
    return PgStore(dsn, schema, source=f"${dsn_env}").open()


class PostgresBackend:
    """The `StateBackend` over a `PgStore`. `project_dir` is where the plan lives: a state
    still kept in its local files there makes a load refuse rather than start afresh."""

    def __init__(self, store: PgStore, project_dir: Path | None = None) -> None:
        self.store = store
        self.project_dir = project_dir
        self._has_state: set[str] = set()

    def describe(self, plan: str) -> str:
        return f"the state of {plan!r} in PostgreSQL at {self.store.target}"

    # state

    def load_state(self, plan: str, expected_lineage: str | None = None) -> State | None:
        loaded = self._load(plan, expected_lineage)
        return None if loaded is None else loaded[0]

    def _load(self, plan: str, expected_lineage: str | None = None) -> tuple[State, int] | None:
        with self.store.tx() as conn:
            row = conn.execute(
                self.store.q("SELECT body FROM {t} WHERE project = %s", t="states"), (plan,)
            ).fetchone()
        if row is None:
            self._refuse_if_elsewhere(plan)
            return None
        self._has_state.add(plan)
        state = self._parse(row[0], plan)
        check_belongs(state, plan, expected_lineage, self.describe(plan))
        return PgStateLog(self.store, plan).replay(state)

    def _refuse_if_elsewhere(self, plan: str) -> None:
        """No state here: make sure it is not kept elsewhere, where a fresh start would make
        every key anew."""
        self._refuse_if_moved()
        if self.project_dir is not None:
            local = self.project_dir / "state" / f"{plan}.state.json"
            if local.exists():
                raise StateMoved(
                    f"the plan names the postgres backend, which holds no state for {plan!r},"
                    f" but state/{local.name} does. Move it there first with"
                    " `orchestrator state migrate --to postgres`."
                )

    def _refuse_if_moved(self) -> None:
        with self.store.tx() as conn:
            moved = conn.execute(
                self.store.q("SELECT destination, moved_at, moved_by FROM {t}", t="moved")
            ).fetchone()
        if moved is not None:
            raise StateMoved(
                f"the store in PostgreSQL at {self.store.target} was moved to {moved[0]} on"
                f" {moved[1]:%Y-%m-%d %H:%M} UTC by {moved[2]}. Set the plan's `backend:` to"
                " where it is now."
            )

    def compact(self, plan: str) -> State | None:
        loaded = self._load(plan)
        if loaded is None:
            return None
        state, changes = loaded
        return self.save_state(state) if changes else state

    def state_writer(self, plan: str) -> StateWriter:
        return StateWriter(
            PgStateLog(self.store, plan),
            save=self.save_state,
            has_snapshot=lambda: self._has_snapshot(plan),
        )

    def _has_snapshot(self, plan: str) -> bool:
        if plan in self._has_state:  # a state is never removed but by a move
            return True
        with self.store.tx() as conn:
            found = conn.execute(
                self.store.q("SELECT 1 FROM {t} WHERE project = %s", t="states"), (plan,)
            ).fetchone()
        if found:
            self._has_state.add(plan)
        return found is not None

    def save_state(self, state: State) -> State:
        """Store `state` as the snapshot, the one it replaces going to the history; the same
        checks as the local backend (successor serial, same lineage, serials from 1). The
        state log it covers is removed in the same transaction."""
        if not state.lineage:
            state = state.model_copy(update={"lineage": str(uuid.uuid4())})
        where = self.describe(state.plan)
        with self.store.tx() as conn:
            state = self._anchored(conn, state)
            stored = conn.execute(
                self.store.q(
                    "SELECT lineage, serial, body, saved_at FROM {t} WHERE project = %s FOR UPDATE",
                    t="states",
                ),
                (state.plan,),
            ).fetchone()
            if stored is not None:
                check_successor(Identity(stored[0], stored[1]), state, where)
                self._keep_in_history(conn, state.plan, stored)
            elif state.serial < 1:
                raise StaleStateError(
                    f"refusing to save {where} with serial {state.serial}: serials start at 1"
                    " (save next_serial(state))"
                )
            conn.execute(
                self.store.q(
                    "INSERT INTO {t} (project, lineage, serial, body) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (project) DO UPDATE SET lineage = excluded.lineage,"
                    " serial = excluded.serial, body = excluded.body, saved_at = now()",
                    t="states",
                ),
                (state.plan, state.lineage, state.serial, render_state(state).decode()),
            )
            conn.execute(
                self.store.q("DELETE FROM {t} WHERE project = %s", t="state_log"), (state.plan,)
            )
        self._has_state.add(state.plan)
        return state

    def _keep_in_history(self, conn: psycopg.Connection, plan: str, stored: tuple) -> None:
        conn.execute(
            self.store.q(
                "INSERT INTO {h} (project, version, lineage, serial, body, saved_at)"
                " SELECT %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s FROM {h}"
                " WHERE project = %s",
                h="state_history",
            ),
            (plan, stored[0], stored[1], stored[2], stored[3], plan),
        )

    def _anchored(self, conn: psycopg.Connection, state: State) -> State:
        """As the local backend: the log's current head, unless the recorded one is no
        longer in the log (the evidence `log verify` reports is kept)."""
        previous = state.audit_head
        if previous is not None and not _holds(self.store, conn, previous):
            return state
        head = _read_head(self.store, conn)
        if head is None or head == previous:
            return state
        return state.model_copy(update={"audit_head": head})

    def history(self, plan: str) -> list[State]:
        """Every earlier version of the plan's state, oldest first (unparsable ones left out)."""
        with self.store.tx() as conn:
            rows = conn.execute(
                self.store.q(
                    "SELECT body FROM {t} WHERE project = %s ORDER BY version", t="state_history"
                ),
                (plan,),
            ).fetchall()
        parsed = [parse_state(row[0].encode()) for row in rows]
        return [state for state in parsed if isinstance(state, State)]

    def restore_backup(self, plan: str) -> State:
        """Put the latest earlier version back as the snapshot; the version it replaces joins
        the history, so nothing is lost. Returns the restored state."""
        where = self.describe(plan)
        with self.store.tx() as conn:
            row = conn.execute(
                self.store.q(
                    "SELECT version, body FROM {t} WHERE project = %s"
                    " ORDER BY version DESC LIMIT 1",
                    t="state_history",
                ),
                (plan,),
            ).fetchone()
            if row is None:
                raise NoBackupError(f"there is no earlier version of {where}")
            restored = parse_state(row[1].encode())
            if not isinstance(restored, State):
                raise NoBackupError(f"the earlier version of {where} is not usable: {restored}")
            check_belongs(restored, plan, None, where)
            stored = conn.execute(
                self.store.q(
                    "SELECT lineage, serial, body, saved_at FROM {t} WHERE project = %s FOR UPDATE",
                    t="states",
                ),
                (plan,),
            ).fetchone()
            if stored is not None:
                self._keep_in_history(conn, plan, stored)
            conn.execute(
                self.store.q(
                    "INSERT INTO {t} (project, lineage, serial, body) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (project) DO UPDATE SET lineage = excluded.lineage,"
                    " serial = excluded.serial, body = excluded.body, saved_at = now()",
                    t="states",
                ),
                (plan, restored.lineage, restored.serial, row[1]),
            )
            conn.execute(self.store.q("DELETE FROM {t} WHERE project = %s", t="state_log"), (plan,))
        return restored

    def _parse(self, body: str, plan: str) -> State:
        where = self.describe(plan)
        parsed = parse_state(body.encode())
        if isinstance(parsed, State):
            return parsed
        if parsed is NEWER:
            raise CorruptStateError(
                f"{where} was written by a newer orchestrator (its version field is above"
                f" {STATE_FORMAT_VERSION}). Upgrade orchestrator.",
                where,
            )
        raise CorruptStateError(
            f"{where} is not a valid state: {parsed}. Was it edited by hand? Put the previous"
            " version back with `orchestrator state restore`, or rebuild it from the live keys"
            " with `orchestrator state rebuild`.",
            where,
        )

    # lock, journal, audit

    def lock(self, plan: str, command: str, force_break_stale: bool = False) -> PgPlanLock:
        from orchestrator.store.pg_lock import PgPlanLock

        def record_takeover(previous: LockInfo, reason: str) -> None:
            self.audit(command).append(
                "lock_takeover",
                detail={"plan": plan, "previous_holder": previous.describe(), "reason": reason},
            )

        return PgPlanLock(self.store, plan, command, force_break_stale, on_takeover=record_takeover)

    def journal(self, plan: str) -> PgJournal:
        return PgJournal(self.store, plan)

    def audit(self, command: str) -> PgAuditLog:
        return PgAuditLog(self.store, command)

    def audit_head(self) -> str | None:
        """The hash of the audit log's last line; None when there is no sound one."""
        with self.store.tx() as conn:
            head = _read_head(self.store, conn)
        return head.hash if head else None

    def verify_audit(self) -> VerifyResult:
        with self.store.tx() as conn:
            lines = conn.execute(
                self.store.q("SELECT line FROM {t} ORDER BY seq", t="audit")
            ).fetchall()
            bodies = conn.execute(
                self.store.q("SELECT project, body FROM {t} ORDER BY project", t="states")
            ).fetchall()
        raw = b"".join(row[0].encode() + b"\n" for row in lines)
        return verify_bytes(raw, _anchors(bodies))

    def audit_name(self) -> str:
        return f"the audit log in PostgreSQL at {self.store.target}"


def _anchors(bodies: list[tuple[str, str]]) -> list[Anchor]:
    """The audit head each project's state recorded, read leniently (as the local backend)."""
    anchors = []
    for project, body in bodies:
        try:
            head = json.loads(body).get("audit_head")
            if head is not None:
                anchors.append(Anchor(f"the state of {project!r}", AuditHead.model_validate(head)))
        except (ValueError, AttributeError):
            continue
    return anchors


# ---------------------------------------------------------------- state log


class PgStateLog(StateLog):
    """The changes since the snapshot, one row per line (see statelog for the semantics)."""

    def __init__(self, store: PgStore, plan: str) -> None:
        self.store = store
        self.plan = plan
        self.path = Path(f"{plan}.state.log")  # only named in messages

    def lines(self) -> tuple[list[bytes], bool]:
        with self.store.tx() as conn:
            rows = conn.execute(
                self.store.q(
                    "SELECT line FROM {t} WHERE project = %s ORDER BY position", t="state_log"
                ),
                (self.plan,),
            ).fetchall()
        return [row[0].encode() for row in rows], False

    def count(self) -> int:
        with self.store.tx() as conn:
            row = conn.execute(
                self.store.q("SELECT count(*) FROM {t} WHERE project = %s", t="state_log"),
                (self.plan,),
            ).fetchone()
        return int(row[0]) if row else 0

    def append(self, lines: list[bytes]) -> None:
        if lines:
            with self.store.tx() as conn:
                _append_lines(self.store, conn, "state_log", self.plan, lines)

    def remove(self) -> None:
        with self.store.tx() as conn:
            conn.execute(
                self.store.q("DELETE FROM {t} WHERE project = %s", t="state_log"), (self.plan,)
            )

    def _corrupt(self, problem: str) -> CorruptStateError:
        where = f"the state log of {self.plan!r} in PostgreSQL at {self.store.target}"
        return CorruptStateError(
            f"{where} cannot be replayed: {problem}. `orchestrator state rebuild` brings the"
            " state up to date from the live keys.",
            where,
        )


def _append_lines(
    store: PgStore, conn: psycopg.Connection, table: str, plan: str, lines: list[bytes]
) -> None:
    """Append `lines` after the last position of `plan`'s lines in `table`."""
    conn.execute(
        store.q(
            "INSERT INTO {t} (project, position, line)"
            " SELECT %s, base.n + entry.ord, entry.line"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS entry(line, ord),"
            " (SELECT coalesce(max(position), 0) AS n FROM {t} WHERE project = %s) AS base",
            t=table,
        ),
        (plan, [line.decode().rstrip("\n") for line in lines], plan),
    )


# ---------------------------------------------------------------- journal


class PgJournal(Journal):
    """The write-ahead journal of one project; a group of records is one transaction."""

    def __init__(self, store: PgStore, plan: str) -> None:
        super().__init__(Path(f"{plan}.journal"))  # a name only: no file is read or written
        self.store = store
        self.plan = plan

    def read(self) -> JournalReading:
        with self.store.tx() as conn:
            rows = conn.execute(
                self.store.q(
                    "SELECT position, line FROM {t} WHERE project = %s ORDER BY position",
                    t="journal",
                ),
                (self.plan,),
            ).fetchall()
        reading = JournalReading()
        for position, line in rows:
            entry = parse_line(line.encode())
            if entry is None:
                reading.damaged_lines.append(position)
            else:
                reading.entries.append(entry)
        return reading

    def damage_report(self) -> str | None:
        damaged = self.damaged_lines()
        if not damaged:
            return None
        numbers = ", ".join(str(n) for n in damaged[:10])
        more = f" and {len(damaged) - 10} more" if len(damaged) > 10 else ""
        return (
            f"the journal of {self.plan!r} in PostgreSQL at {self.store.target} has entries"
            f" that could not be read (positions {numbers}{more}); they were skipped, and the"
            " live account and sinks decide the rest. They are kept in journal_kept when this"
            " run clears the journal."
        )

    def clear(self) -> Path | None:
        """Forget the journal in one transaction; damaged entries are kept in journal_kept."""
        damaged = bool(self.damaged_lines())
        with self.store.tx() as conn:
            if damaged:
                conn.execute(
                    self.store.q(
                        "INSERT INTO {k} (project, cleared_at, position, line)"
                        " SELECT project, now(), position, line FROM {j} WHERE project = %s",
                        k="journal_kept",
                        j="journal",
                    ),
                    (self.plan,),
                )
            conn.execute(
                self.store.q("DELETE FROM {t} WHERE project = %s", t="journal"), (self.plan,)
            )
        return None

    def _append(self, records: list[dict[str, Any]]) -> None:
        if records:
            lines = [canonical_json(record).encode() for record in records]
            with self.store.tx() as conn:
                _append_lines(self.store, conn, "journal", self.plan, lines)


# ---------------------------------------------------------------- audit log


class PgAuditLog(AuditEvents):
    """The audit log's rows; an append locks the table for its transaction, so the chain of
    concurrent runs (of any project in the schema) stays one."""

    def __init__(self, store: PgStore, command: str) -> None:
        super().__init__(command)
        self.store = store

    def write_group(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not events:
            return []
        with self._mutex, self.store.tx() as conn:
            conn.execute(self.store.q("LOCK TABLE {t} IN EXCLUSIVE MODE", t="audit"))
            tip = _tip(self.store, conn)
            seq, prev, offset = tip if tip else (0, GENESIS, 0)
            written = chained(events, seq, prev)
            rows = []
            for event in written:
                line = canonical_json(event)
                rows.append((event["seq"], offset, line))
                offset += len(line.encode()) + 1
            with conn.cursor() as cursor:
                cursor.executemany(
                    self.store.q(
                        "INSERT INTO {t} (seq, line_offset, line) VALUES (%s, %s, %s)", t="audit"
                    ),
                    rows,
                )
        return written


def _tip(store: PgStore, conn: psycopg.Connection) -> tuple[int, str, int] | None:
    """The last entry's seq and hash, and where the next line starts; None for an empty log."""
    row = conn.execute(
        store.q("SELECT seq, line_offset, line FROM {t} ORDER BY seq DESC LIMIT 1", t="audit")
    ).fetchone()
    if row is None:
        return None
    seq, offset, line = row
    next_offset = offset + len(line.encode()) + 1
    try:
        return int(seq), str(json.loads(line)["hash"]), next_offset
    except (ValueError, KeyError, TypeError):
        # as the file backend: a damaged tip must not stop an incident from being recorded
        return int(seq), hashlib.sha256(line.encode()).hexdigest(), next_offset


def _read_head(store: PgStore, conn: psycopg.Connection) -> AuditHead | None:
    row = conn.execute(
        store.q("SELECT line_offset, line FROM {t} ORDER BY seq DESC LIMIT 1", t="audit")
    ).fetchone()
    if row is None:
        return None
    event = sound_event(row[1].encode())
    if event is None:
        return None
    return AuditHead(seq=event["seq"], hash=event["hash"], offset=row[0])


def _holds(store: PgStore, conn: psycopg.Connection, head: AuditHead) -> bool:
    row = conn.execute(
        store.q("SELECT line_offset, line FROM {t} WHERE seq = %s", t="audit"), (head.seq,)
    ).fetchone()
    if row is None or row[0] != head.offset:
        return False
    event = sound_event(row[1].encode())
    return event is not None and (event["seq"], event["hash"]) == (head.seq, head.hash)


__all__ = [
    "BackendUnavailable",
    "PgStore",
    "PostgresBackend",
    "StateMoved",
    "open_store",
    "safe_target",
]
