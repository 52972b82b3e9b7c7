"""Notifications: what a run tells people when it fails, sees signs of compromise, locks
down, or audits risky keys; sent through apprise to the plan's `notify:` targets and
ORCHESTRATOR_NOTIFY's.

The engine only sees a `Notifier` (handed in through `orchestrator.wiring`), and sends it a
typed event with one call; tests hand in a recorder.
"""

from orchestrator.notify.events import (
    DEFAULT_LEVEL,
    LEVELS,
    Alert,
    AuditFindings,
    CommandFailed,
    Event,
    LockdownRan,
    Notice,
    PossibleCompromise,
    level_rank,
)
from orchestrator.notify.notifier import (
    LEVEL_VARIABLE,
    TARGETS_VARIABLE,
    AppriseNotifier,
    Notifier,
    NotifierOpener,
    NotifySettings,
    SilentNotifier,
    open_notifier,
    warn_undelivered,
)
from orchestrator.notify.targets import check_url

__all__ = [
    "DEFAULT_LEVEL",
    "LEVELS",
    "LEVEL_VARIABLE",
    "TARGETS_VARIABLE",
    "Alert",
    "AppriseNotifier",
    "AuditFindings",
    "CommandFailed",
    "Event",
    "LockdownRan",
    "Notice",
    "Notifier",
    "NotifierOpener",
    "NotifySettings",
    "PossibleCompromise",
    "SilentNotifier",
    "check_url",
    "level_rank",
    "open_notifier",
    "warn_undelivered",
]
