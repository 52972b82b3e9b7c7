"""The emulator's data file: JSON, replaced atomically so a kill never leaves it half written.

A write goes to a temporary file in the same directory, is flushed and fsynced, then renamed
over the data file (and the directory fsynced). A leftover temporary file from a killed
process is never read.

Rewriting the whole file after every change costs O(all keys) per call (50 ms at 1,000 keys),
which would make the emulator, not the rate limits, the bottleneck of a large apply. So a
change to one sub-account is appended (fsynced) to a journal beside the data file,
`<data>.journal`: one JSON line with that sub-account's whole new state. `load` replays it;
`save` writes a full snapshot and then removes the journal. Entries are whole states, so
replaying one that the snapshot already holds changes nothing, and a torn last line (a kill
mid-append) is ignored.

Both files hold every sub-account key's secret: they are created 0600 whatever the umask, and
one found readable by others is made 0600 when the data is loaded.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600


class DataFileError(Exception):
    """The data file exists but cannot be read as emulator data."""


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def load(path: Path) -> dict | None:
    """The stored data with the journal replayed, or None when the file does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for existing in (path, journal_path(path)):
        _make_private(existing)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(
            f"{path} is not valid JSON ({exc}); move it away to start fresh"
        ) from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise DataFileError(f"{path} is not an emulator data file (version 1)")
    _replay(data, journal_path(path))
    return data


def append(path: Path, entry: dict) -> None:
    """Record one sub-account's new state (`{"sub": ..., "top": {...}}`) in the journal."""
    line = json.dumps(entry, separators=(",", ":")) + "\n"
    fd = os.open(journal_path(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_MODE:  # an older, wider journal
            os.fchmod(fd, PRIVATE_MODE)
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(path.parent)
    _remove_quietly(str(journal_path(path)))


def _replay(data: dict, journal: Path) -> None:
    try:
        lines = journal.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    indexes: dict[str | None, dict[str, int]] = {}
    for line in lines:
        try:
            entry = json.loads(line)
            sub = entry["sub"]
            email = sub["email"]
            master = entry.get("master")
            account = _account_of(data, master)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a torn last line from a kill mid-append
        account.update(entry.get("top", {}))
        subs = account.setdefault("subAccounts", [])
        if master not in indexes:
            indexes[master] = {known.get("email"): n for n, known in enumerate(subs)}
        index = indexes[master]
        if email in index:
            subs[index[email]] = sub
        else:
            index[email] = len(subs)
            subs.append(sub)


def _account_of(data: dict, master: str | None) -> dict:
    """The part of the data a journal entry changes: the first master's account (the top
    level) or the named further master's, which the snapshot must already hold."""
    if master is None:
        return data
    return data["masters"][master]


def _make_private(path: Path) -> None:
    try:
        if stat.S_IMODE(path.stat().st_mode) != PRIVATE_MODE:
            path.chmod(PRIVATE_MODE)
    except FileNotFoundError:
        pass


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
