"""The emulator's data file: JSON, replaced atomically so a kill never leaves it half written.

A write goes to a temporary file in the same directory, is flushed and fsynced, then renamed
over the data file (and the directory fsynced). A leftover temporary file from a killed
process is never read.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class DataFileError(Exception):
    """The data file exists but cannot be read as emulator data."""


def load(path: Path) -> dict | None:
    """The stored data, or None when the file does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(
            f"{path} is not valid JSON ({exc}); move it away to start fresh"
        ) from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise DataFileError(f"{path} is not an emulator data file (version 1)")
    return data


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
