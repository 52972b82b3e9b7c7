"""Sending notices: the `Notifier` the engine is handed, and the apprise one behind it.

Targets come from the plan's `notify:` list and from ORCHESTRATOR_NOTIFY (comma-separated
apprise URLs); the level for audit findings from the plan's `notify_level:`, overridden by
ORCHESTRATOR_NOTIFY_LEVEL. A notification never decides a run: a target that is down,
malformed or slow is logged as a warning and the run goes on, its exit code unchanged. Every
send has a deadline, so a scheduled run never hangs on a notification.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from orchestrator.notify.events import DEFAULT_LEVEL, LEVELS, Notice
from orchestrator.notify.targets import MESSAGES, Target, UnusableUrl, shown_scheme, target

TARGETS_VARIABLE = "ORCHESTRATOR_NOTIFY"
LEVEL_VARIABLE = "ORCHESTRATOR_NOTIFY_LEVEL"
#: the longest one notice may hold up a run, all targets together, in seconds.
DEADLINE_S = 10.0

log = structlog.get_logger("orchestrator.notify")


@dataclass(frozen=True)
class NotifySettings:
    """Where notices go (apprise URLs) and from which audit severity on."""

    urls: tuple[str, ...] = ()
    level: str = DEFAULT_LEVEL


class Notifier(Protocol):
    """Sends notices; never raises, never blocks a run for long."""

    level: str  # audit findings at or above this severity are notified

    def send(self, notice: Notice) -> None: ...


class NotifierOpener(Protocol):
    """Makes the notifier for a plan's notification settings."""

    def __call__(self, settings: NotifySettings) -> Notifier: ...


class SilentNotifier:
    """No targets: notices go nowhere."""

    def __init__(self, level: str = DEFAULT_LEVEL) -> None:
        self.level = level

    def send(self, notice: Notice) -> None:
        return None


class AppriseNotifier:
    """Sends each notice to every target at once, through apprise, within `deadline_s`."""

    def __init__(
        self, targets: Sequence[Target], level: str = DEFAULT_LEVEL, deadline_s: float = DEADLINE_S
    ) -> None:
        self.targets = tuple(targets)
        self.level = level
        self.deadline_s = deadline_s

    def send(self, notice: Notice) -> None:
        sends = [_Send(t, notice) for t in self.targets]
        for send in sends:
            send.thread.start()
        deadline = time.monotonic() + self.deadline_s
        for send in sends:
            send.thread.join(max(0.0, deadline - time.monotonic()))
            problem = send.problem(self.deadline_s)
            if problem:
                warn_undelivered(send.target.shown, problem)
            else:
                log.info("notification sent", target=send.target.shown, title=notice.title)


class _Send:
    """One notice to one target, in a daemon thread (a target that hangs past the deadline
    is left behind, and dies with the process)."""

    def __init__(self, target: Target, notice: Notice) -> None:
        self.target = target
        self.notice = notice
        self.delivered = False
        self.error: str | None = None
        self.said: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True, name="notify")

    def _run(self) -> None:
        MESSAGES.watch()
        try:
            self.delivered = bool(
                self.target.plugin.notify(
                    body=self.notice.body,
                    title=self.notice.title,
                    notify_type=self.notice.event.urgency(),
                )
            )
        except Exception as exc:  # noqa: BLE001 - a notifier never fails the run
            self.error = type(exc).__name__
        finally:
            self.said = MESSAGES.take(threading.get_ident())

    def problem(self, deadline_s: float) -> str | None:
        if self.thread.is_alive():
            return f"no answer within {deadline_s:g}s"
        if self.delivered:
            return None
        why = self.error and f"apprise raised {self.error}"
        return self.target.redact("; ".join(filter(None, [why, *self.said])) or "not delivered")


def warn_undelivered(shown: str, problem: str) -> None:
    log.warning(
        "notification not sent; the run itself is unaffected", target=shown, problem=problem
    )


def open_notifier(
    settings: NotifySettings,
    environ: Mapping[str, str] | None = None,
    deadline_s: float = DEADLINE_S,
) -> Notifier:
    """The notifier for the plan's `settings` together with the environment's. A target or
    level in the environment that cannot be used is warned about and left out."""
    environ = os.environ if environ is None else environ
    level = env_level(environ, settings.level)
    sources = [("the plan's notify:", settings.urls), (TARGETS_VARIABLE, env_urls(environ))]
    targets: dict[str, Target] = {}
    for where, urls in sources:
        for index, url in enumerate(urls, start=1):
            if url in targets:
                continue
            try:
                targets[url] = target(url)
            except UnusableUrl as exc:
                warn_undelivered(f"{shown_scheme(url)} (entry {index} of {where})", str(exc))
    if not targets:
        return SilentNotifier(level)
    return AppriseNotifier(list(targets.values()), level, deadline_s)


def env_urls(environ: Mapping[str, str]) -> list[str]:
    return [u.strip() for u in environ.get(TARGETS_VARIABLE, "").split(",") if u.strip()]


def env_level(environ: Mapping[str, str], default: str) -> str:
    given = environ.get(LEVEL_VARIABLE, "").strip().lower()
    if not given:
        return default
    if given not in LEVELS:
        log.warning(
            f"{LEVEL_VARIABLE} is not a level; using {default}",
            given=given[:20],
            levels=", ".join(LEVELS),
        )
        return default
    return given
