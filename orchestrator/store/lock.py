"""The plan lock `state/<plan>.lock`: one apply at a time, and who holds it when refused.

The lock file is created with O_CREAT|O_EXCL, so exactly one process wins. Breaking a stale
lock happens under an flock on `<lock>.break`, so two breakers cannot remove each other's
fresh lock.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.store.atomic import PRIVATE_FILE, fsync_dir, write_fd_fully
from orchestrator.store.errors import LockHeld, LockNotHeld

#: a lock file that stays unreadable this long is the leftover of a crash while writing it.
UNREADABLE_LOCK_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class LockInfo:
    holder: str
    host: str
    pid: int
    command: str
    started_at: str
    token: str
    pid_started: str | None = None

    def describe(self) -> str:
        return (
            f"{self.holder}@{self.host} (pid {self.pid}) running {self.command!r} "
            f"since {self.started_at}"
        )


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

    def __init__(self, path: Path, command: str, force_break_stale: bool = False) -> None:
        self.path = Path(path)
        self.command = command
        self.force_break_stale = force_break_stale
        self._mine: LockInfo | None = None

    @property
    def held(self) -> bool:
        return self._mine is not None

    def acquire(self, force_break_stale: bool = False) -> LockInfo:
        """Take the lock or raise LockHeld naming the holder; break it only if stale and asked."""
        if self._mine is not None:
            return self._mine
        info = self._new_info()
        if self._try_create(info):
            return info
        if force_break_stale and self._break_if_stale() and self._try_create(info):
            return info
        raise self._held_error()

    def release(self) -> None:
        """Remove the lock file if it is still ours."""
        if self._mine is None:
            raise LockNotHeld(f"{self.path} is not held by this process")
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
        """True when the holder is a process on this host that no longer exists."""
        if not self.path.exists():
            return False
        info = self.holder()
        if info is None:
            return self._unreadable_for_long()
        if info.host != socket.gethostname():
            return False
        if not _pid_alive(info.pid):
            return True
        return info.pid_started is not None and _process_start(info.pid) != info.pid_started

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
            host=socket.gethostname(),
            pid=pid,
            command=self.command,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            token=secrets.token_hex(8),
            pid_started=_process_start(pid),
        )

    def _try_create(self, info: LockInfo) -> bool:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, PRIVATE_FILE)
        except FileExistsError:
            return False
        try:
            os.fchmod(fd, PRIVATE_FILE)
            write_fd_fully(fd, json.dumps(asdict(info), indent=2).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.path.parent)
        self._mine = info
        return True

    def _break_if_stale(self) -> bool:
        guard_path = self.path.with_name(self.path.name + ".break")
        fd = os.open(guard_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not self.is_stale():
                return not self.path.exists()
            self.path.unlink(missing_ok=True)
            fsync_dir(self.path.parent)
            return True
        finally:
            os.close(fd)

    def _unreadable_for_long(self) -> bool:
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        return age > UNREADABLE_LOCK_GRACE_SECONDS

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
        stale = self.is_stale()
        who = info.describe() if info else "an unknown process (the lock file is unreadable)"
        message = f"{self.path} is held by {who}."
        if stale:
            message += (
                " That process is gone: the lock is stale and can be broken safely by running"
                " the command again with --break-stale-lock."
            )
        else:
            message += (
                " Wait for it to finish; if you are sure it is not running,"
                f" remove {self.path} by hand."
            )
        return LockHeld(message, info, stale)
