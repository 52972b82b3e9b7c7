"""What can go wrong with state, lock, journal and audit log: each with a message a person can act on."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store error."""


class StaleStateError(StoreError):
    """Someone saved the state since it was loaded: saving now would lose their change."""


class LineageMismatch(StoreError):
    """The state file belongs to another plan or another history than the one expected."""


class CorruptStateError(StoreError):
    """The state file cannot be read as a state (truncated, hand-edited, wrong schema)."""

    def __init__(self, message: str, path: str, backup: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.backup = backup


class StateMoved(StoreError):
    """The store was moved to another backend; the plan still names the one it left."""


class NoBackupError(StoreError):
    """A restore was asked for but there is no usable backup."""


class LockHeld(StoreError):
    """Another process holds the plan's lock."""

    def __init__(self, message: str, holder: object | None, stale: bool) -> None:
        super().__init__(message)
        self.holder = holder
        self.stale = stale


class LockNotHeld(StoreError):
    """Releasing a lock this process does not hold."""


class SecretInRecordError(StoreError, TypeError):
    """A value bound for the journal or audit log is a secret or not plain data."""
