"""State persistence, plan lock, write-ahead journal and audit log, behind `StateBackend`."""

from orchestrator.store.audit import AuditLog, VerifyResult, mask_key, verify
from orchestrator.store.backend import StateBackend
from orchestrator.store.errors import (
    CorruptStateError,
    LineageMismatch,
    LockHeld,
    LockNotHeld,
    NoBackupError,
    SecretInRecordError,
    StaleStateError,
    StoreError,
)
from orchestrator.store.files import LocalFileBackend, new_state, next_serial
from orchestrator.store.journal import Journal, JournalEntry, JournalReading
from orchestrator.store.lock import LockInfo, PlanLock
from orchestrator.store.state import AuditHead, KeyRecord, RetiredKey, State, SubaccountRecord

__all__ = [
    "AuditHead",
    "AuditLog",
    "CorruptStateError",
    "Journal",
    "JournalEntry",
    "JournalReading",
    "KeyRecord",
    "LineageMismatch",
    "LocalFileBackend",
    "LockHeld",
    "LockInfo",
    "LockNotHeld",
    "NoBackupError",
    "PlanLock",
    "RetiredKey",
    "SecretInRecordError",
    "StaleStateError",
    "State",
    "StateBackend",
    "StoreError",
    "SubaccountRecord",
    "VerifyResult",
    "mask_key",
    "new_state",
    "next_serial",
    "verify",
]
