"""Durable file writes: a reader sees the old content or the new one, never a mix.

Used by the state store and by the file sinks.
"""

from __future__ import annotations

import glob
import os
import secrets
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` survive a power loss."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_fd_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    """Write `data` to `path` via a temp file in the same directory, fsync, rename, fsync dir.

    The mode is set with fchmod so the umask cannot widen or narrow it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        os.fchmod(fd, mode)
        write_fd_fully(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_rename(src: Path, dst: Path) -> None:
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)
    if Path(src).parent != Path(dst).parent:
        fsync_dir(Path(src).parent)


def remove_partial_writes(directory: Path, name_prefix: str) -> int:
    """Remove the temporary files that interrupted `atomic_write`s of files whose names start
    with `name_prefix` left in `directory` (a kill -9 between write and rename). Returns how
    many went. Only for files this process alone writes while it holds the project's lock."""
    removed = 0
    try:
        leftovers = list(Path(directory).glob(f".{glob.escape(name_prefix)}*.tmp"))
    except OSError:
        return 0
    for leftover in leftovers:
        removed += unlink_durably(leftover)
    return removed


def unlink_durably(path: Path) -> bool:
    """Remove `path` if present; True when something was removed."""
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return False
    fsync_dir(Path(path).parent)
    return True


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` (and missing parents) as 0700; existing directories keep their mode."""
    directory = Path(directory)
    missing = []
    probe = directory
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue
        os.chmod(new, PRIVATE_DIR)


def repair_torn_tail(path: Path, is_complete_line) -> None:
    """Before appending to a line file, deal with a last line a crash left without its newline.

    A fragment that is not a complete record is cut off (it was never acknowledged: the
    writer fsyncs after the whole line); a complete one just gets its newline.
    """
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        start = _last_line_start(handle, size)
        handle.seek(start)
        fragment = handle.read()
        if is_complete_line(fragment):
            handle.seek(0, os.SEEK_END)
            handle.write(b"\n")
        else:
            handle.truncate(start)
        handle.flush()
        os.fsync(handle.fileno())


def _last_line_start(handle, size: int) -> int:
    """Offset just after the last newline of a file (0 when it has none)."""
    position = size
    chunk = 4096
    while position > 0:
        step = min(chunk, position)
        position -= step
        handle.seek(position)
        block = handle.read(step)
        index = block.rfind(b"\n")
        if index != -1:
            return position + index + 1
    return 0


def read_last_line(path: Path) -> bytes | None:
    """The last complete line of a file (without newline), or None when there is none."""
    found = last_line_and_offset(path)
    return None if found is None else found[1]


def last_line_and_offset(path: Path) -> tuple[int, bytes] | None:
    """Where the last complete line of a file starts, and the line (without newline)."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        end = size - 1 if handle.read(1) == b"\n" else size
        if end == 0:
            return None
        start = _last_line_start(handle, end)
        handle.seek(start)
        return start, handle.read(end - start)
