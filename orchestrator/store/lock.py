"""The plan lock `state/<project>.lock`: one apply at a time, and who holds it when refused.

The lock file is created with O_CREAT|O_EXCL, so exactly one process wins. A holder that is
gone is taken over without anyone having to act, so a scheduled run after a kill -9 proceeds:

- on this host, the holder is gone when its pid is not alive, or is alive with another start
  time (the pid was reused);
- across hosts a pid says nothing, so the holder keeps a lease: it records when the lease
  expires and a heartbeat thread renews it while the lock is held. Once a lease has expired
  without renewal, another host may take over; before that it is refused, naming the holder,
  unless a person passes --break-stale-lock.

Taking over happens under an flock on `<lock>.break`, so two processes taking over cannot
remove each other's fresh lock, and is reported to `on_takeover` (the audit log).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.store.atomic import PRIVATE_FILE, atomic_write, fsync_dir, write_fd_fully
from orchestrator.store.errors import LockHeld, LockNotHeld

#: a lock file that stays unreadable this long is the leftover of a crash while writing it.
UNREADABLE_LOCK_GRACE_SECONDS = 10.0

#: how long a holder's lease runs; the heartbeat renews it every third of that.
LEASE_SECONDS = 90.0

#: called with the holder that was replaced (None: unreadable) and why.
TakeoverReport = Callable[["LockInfo | None", str], None]


@dataclass(frozen=True)
class LockInfo:
    holder: str
    host: str
    pid: int
    command: str
    started_at: str
    token: str
    pid_started: str | None = None
    lease_expires: str | None = None

    def describe(self) -> str:
        return (
            f"{self.holder}@{self.host} (pid {self.pid}) running {self.command!r} "
            f"since {self.started_at}"
        )

    def lease_expired(self, fallback_start: float) -> bool:
        """Whether the lease ran out. A lock written without a lease (an older orchestrator)
        counts as leased from `fallback_start`, the file's last change."""
        if self.lease_expires is None:
            return time.time() > fallback_start + LEASE_SECONDS
        try:
            expires = datetime.fromisoformat(self.lease_expires)
        except ValueError:
            return True
        if expires.tzinfo is None:
            return True
        return datetime.now(UTC) > expires


#: the host name a run records in locks and audit events, when set (else the machine's):
#: containers and CI runners that share a hostname can tell themselves apart.
HOST_ENV = "ORCHESTRATOR_HOSTNAME"


def host_name() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux), to tell a reused pid from the holder."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PlanLock:
    """Context manager for a plan lock; `with PlanLock(path, "apply"):` holds it for the block."""

    def __init__(
        self,
        path: Path,
        command: str,
        force_break_stale: bool = False,
        *,
        on_takeover: TakeoverReport | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.command = command
        self.force_break_stale = force_break_stale
        self.on_takeover = on_takeover
        self.lease_seconds = lease_seconds
        self._mine: LockInfo | None = None
        self._heartbeat: _Heartbeat | None = None

    @property
    def held(self) -> bool:
        return self._mine is not None

    def acquire(self, force_break_stale: bool = False) -> LockInfo:
        """Take the lock, taking over from a holder that is gone (or, with
        `force_break_stale`, from a live-looking one on another host); else raise LockHeld
        naming the holder."""
        if self._mine is not None:
            return self._mine
        info = self._new_info()
        if self._try_create(info):
            return self._started(info)
        if self._take_over(force_break_stale) and self._try_create(info):
            return self._started(info)
        raise self._held_error()

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still ours."""
        if self._mine is None:
            raise LockNotHeld(f"{self.path} is not held by this process")
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        with self._guard():
            current = self.holder()
            if current is not None and current.token == self._mine.token:
                self.path.unlink(missing_ok=True)
                fsync_dir(self.path.parent)
        self._mine = None

    def holder(self) -> LockInfo | None:
        """Who holds the lock now, or None when it is free or unreadable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return LockInfo(**json.loads(raw))
        except (ValueError, TypeError):
            return None

    def is_stale(self) -> bool:
        """True when the holder is gone: a dead process on this host, an expired lease on
        another, or a lock file that stayed unreadable."""
        return self._stale_reason(self.holder()) is not None

    def renew(self) -> bool:
        """Extend this holder's lease; False when the lock is no longer ours (taken over)."""
        if self._mine is None:
            return False
        with self._guard():
            current = self.holder()
            if current is None or current.token != self._mine.token:
                return False
            self._mine = replace(self._mine, lease_expires=self._lease_end())
            atomic_write(self.path, _render(self._mine))
        return True

    def __enter__(self) -> PlanLock:
        self.acquire(self.force_break_stale)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._mine is not None:
            self.release()

    def _new_info(self) -> LockInfo:
        pid = os.getpid()
        return LockInfo(
            holder=current_user(),
            host=host_name(),
            pid=pid,
            command=self.command,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            token=secrets.token_hex(8),
            pid_started=_process_start(pid),
            lease_expires=self._lease_end(),
        )

    def _lease_end(self) -> str:
        return (datetime.now(UTC) + timedelta(seconds=self.lease_seconds)).isoformat()

    def _started(self, info: LockInfo) -> LockInfo:
        self._heartbeat = _Heartbeat(self, interval=self.lease_seconds / 3)
        return info

    def _try_create(self, info: LockInfo) -> bool:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, PRIVATE_FILE)
        except FileExistsError:
            return False
        try:
            os.fchmod(fd, PRIVATE_FILE)
            write_fd_fully(fd, _render(info))
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.path.parent)
        self._mine = info
        return True

    def _stale_reason(self, info: LockInfo | None) -> str | None:
        if info is None:
            unreadable = self.path.exists() and self._unreadable_for_long()
            return "its lock file stayed unreadable" if unreadable else None
        if info.host == host_name():
            if not _pid_alive(info.pid):
                return "its process is gone"
            started = _process_start(info.pid)
            if info.pid_started is not None and started is not None and started != info.pid_started:
                return "its process is gone (the pid now belongs to another process)"
            return None
        if info.lease_expired(self._mtime()):
            return f"its lease expired at {info.lease_expires or 'an unknown time'} unrenewed"
        return None

    def _take_over(self, force_break_stale: bool) -> bool:
        """Remove the lock file if its holder is gone (or may be broken); True when the lock
        is free now. The holder is re-read under the guard, so a fresh lock is never removed."""
        with self._guard():
            if not self.path.exists():
                return True
            info = self.holder()
            reason = self._stale_reason(info)
            if reason is None and force_break_stale and _breakable(info):
                reason = "broken with --break-stale-lock (its host is another machine)"
            if reason is None:
                return False
            self.path.unlink(missing_ok=True)
            fsync_dir(self.path.parent)
        if self.on_takeover is not None:
            self.on_takeover(info, reason)
        return True

    def _guard(self):
        return _FlockGuard(self.path.with_name(self.path.name + ".break"))

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            return time.time()

    def _unreadable_for_long(self) -> bool:
        return time.time() - self._mtime() > UNREADABLE_LOCK_GRACE_SECONDS

    def _settled_holder(self) -> LockInfo | None:
        """The holder, waiting briefly for a winner that created the file but is still writing it."""
        deadline = time.monotonic() + 1.0
        info = self.holder()
        while info is None and self.path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
            info = self.holder()
        return info

    def _held_error(self) -> LockHeld:
        info = self._settled_holder()
        who = info.describe() if info else "an unknown process (the lock file is unreadable)"
        message = f"{self.path} is held by {who}."
        if info is not None and info.host != host_name():
            message += (
                f" Its lease runs until {info.lease_expires or 'unknown'}; the lock is taken over"
                " by itself once the lease runs out unrenewed. If you know that process is gone,"
                " run the command again with --break-stale-lock."
            )
        else:
            message += " Wait for it to finish."
        return LockHeld(message, info, stale=False)


def _breakable(info: LockInfo | None) -> bool:
    """A person may break a lock whose holder this host cannot check: one on another host.
    A live holder on this host is never broken."""
    return info is not None and info.host != host_name()


def _render(info: LockInfo) -> bytes:
    return json.dumps(asdict(info), indent=2).encode() + b"\n"


class _FlockGuard:
    """An exclusive flock on a side file for the duration of a `with` block."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _Heartbeat:
    """Renews a held lock's lease in a daemon thread until stopped. Cheap: one small atomic
    write every `interval` seconds. A process killed with -9 takes the thread with it, which
    is what lets the lease run out."""

    def __init__(self, lock: PlanLock, interval: float) -> None:
        self._lock = lock
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lock-heartbeat {lock.path.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                if not self._lock.renew():
                    return
            except OSError:
                continue  # a full disk or a hiccup: try again at the next beat

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
