"""The PostgreSQL backend's plan lock: a session-level advisory lock on a connection of its
own, held for the run. The server releases it when the holding process dies (its session
ends), so a run after a kill -9 proceeds by itself; `lock_holders` says who holds it."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from orchestrator.store.errors import LockHeld, LockNotHeld
from orchestrator.store.lock import LockInfo, current_user, host_name
from orchestrator.store.pg_schema import advisory_key
from orchestrator.store.postgres import PgStore

#: the lock's session asks the server to probe its client, so a holder whose machine vanished
#: (no FIN, no RST) loses the lock within about a minute rather than hours.
LOCK_SESSION_OPTIONS = (
    "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
)


class PgPlanLock:
    """A project's lock: `pg_try_advisory_lock` on a connection opened for it and held until
    release. When the holder's process dies its session ends and the server releases the
    lock: the next run takes it, and reports the holder row the dead run left as a takeover.
    A refused run names the holder from that row."""

    def __init__(
        self,
        store: PgStore,
        plan: str,
        command: str,
        force_break_stale: bool = False,
        *,
        on_takeover: Callable[[LockInfo, str], None] | None = None,
    ) -> None:
        self.store = store
        self.plan = plan
        self.command = command
        self.force_break_stale = force_break_stale
        self.on_takeover = on_takeover
        self.key = advisory_key(self.store.schema, "lock", plan)
        self._conn: psycopg.Connection | None = None
        self._mine: LockInfo | None = None

    @property
    def held(self) -> bool:
        return self._mine is not None

    def acquire(self, force_break_stale: bool = False) -> LockInfo:
        """Take the lock or raise LockHeld naming the holder. With `force_break_stale`, a
        holder on another host has its database session ended first (a person decided that
        run is gone; the server would end it on its own once it notices)."""
        if self._mine is not None:
            return self._mine
        conn = self.store.connect(options=LOCK_SESSION_OPTIONS)
        try:
            if not self._try(conn):
                holder = self._settled_holder(conn)
                force = force_break_stale or self.force_break_stale
                if not (force and self._break(conn, holder)):
                    raise self._held_error(holder)
            return self._record(conn)
        except BaseException:
            conn.close()
            raise

    def _try(self, conn: psycopg.Connection) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return bool(row and row[0])

    def _record(self, conn: psycopg.Connection) -> LockInfo:
        """Write this run's holder row (a dead holder's row is reported and replaced)."""
        previous = self._holder_row(conn)
        info = LockInfo(
            holder=current_user(),
            host=host_name(),
            pid=os.getpid(),
            command=self.command,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            token=secrets.token_hex(8),
        )
        conn.execute(
            self.store.q(
                "INSERT INTO {t} (project, holder, host, pid, command, started_at, token,"
                " backend_pid) VALUES (%s, %s, %s, %s, %s, %s, %s, pg_backend_pid())"
                " ON CONFLICT (project) DO UPDATE SET holder = excluded.holder,"
                " host = excluded.host, pid = excluded.pid, command = excluded.command,"
                " started_at = excluded.started_at, token = excluded.token,"
                " backend_pid = excluded.backend_pid",
                t="lock_holders",
            ),
            (
                self.plan,
                info.holder,
                info.host,
                info.pid,
                info.command,
                info.started_at,
                info.token,
            ),
        )
        self._conn, self._mine = conn, info
        if previous is not None and self.on_takeover is not None:
            self.on_takeover(
                previous[0], "its run ended without releasing the lock (its session is gone)"
            )
        return info

    def _holder_row(self, conn: psycopg.Connection) -> tuple[LockInfo, int] | None:
        row = conn.execute(
            self.store.q(
                "SELECT holder, host, pid, command, started_at, token, backend_pid FROM {t}"
                " WHERE project = %s",
                t="lock_holders",
            ),
            (self.plan,),
        ).fetchone()
        if row is None:
            return None
        return LockInfo(*row[:6]), row[6]

    def _settled_holder(self, conn: psycopg.Connection) -> tuple[LockInfo, int] | None:
        """The holder row, waiting briefly for a winner that has the lock but not its row yet."""
        deadline = time.monotonic() + 2.0
        holder = self._holder_row(conn)
        while holder is None and time.monotonic() < deadline:
            time.sleep(0.05)
            holder = self._holder_row(conn)
        return holder

    def _break(self, conn: psycopg.Connection, holder: tuple[LockInfo, int] | None) -> bool:
        if holder is None or holder[0].host == host_name():
            return False  # a live holder on this host is never broken
        conn.execute("SELECT pg_terminate_backend(%s)", (holder[1],))
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if self._try(conn):
                if self.on_takeover is not None:
                    self.on_takeover(holder[0], "broken with --break-stale-lock")
                conn.execute(
                    self.store.q("DELETE FROM {t} WHERE project = %s", t="lock_holders"),
                    (self.plan,),
                )
                return True
            time.sleep(0.1)
        return False

    def _held_error(self, holder: tuple[LockInfo, int] | None) -> LockHeld:
        who = holder[0].describe() if holder else "a run that has not recorded itself yet"
        return LockHeld(
            f"the lock of {self.plan!r} in PostgreSQL at {self.store.target} is held by {who}."
            " Wait for it to finish: the lock is released when that run ends, and by the"
            " server if its process dies.",
            holder[0] if holder else None,
            stale=False,
        )

    def release(self) -> None:
        if self._mine is None or self._conn is None:
            raise LockNotHeld(f"the lock of {self.plan!r} is not held by this process")
        conn, token = self._conn, self._mine.token
        self._conn, self._mine = None, None
        try:
            conn.execute(
                self.store.q("DELETE FROM {t} WHERE project = %s AND token = %s", t="lock_holders"),
                (self.plan, token),
            )
            conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except psycopg.Error:
            pass  # closing the session below releases the lock all the same
        finally:
            conn.close()

    def holder(self) -> LockInfo | None:
        with self.store.tx() as conn:
            row = self._holder_row(conn)
        return row[0] if row else None

    def is_stale(self) -> bool:
        """True when a holder row is left but nobody holds the lock (its run died)."""
        if self._mine is not None:
            return False
        with self.store.tx() as conn:
            if self._holder_row(conn) is None:
                return False
            row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (self.key,)).fetchone()
        return bool(row and row[0])

    def __enter__(self) -> PgPlanLock:
        self.acquire(self.force_break_stale)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._mine is not None:
            self.release()
