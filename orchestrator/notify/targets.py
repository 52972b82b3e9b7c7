"""Apprise URLs: checked, turned into targets, and never shown with their tokens.

A notification URL often carries a token (a webhook path, a bot token, a password), so the
raw URL is never printed or logged: a target is shown by apprise's own privacy form of it,
and anything apprise says about a target is scrubbed of every part of the raw URL that the
privacy form hides. apprise's logger is routed here, not to the process's log handlers, for
the same reason.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

#: how long one target may take to connect, and then to answer, in seconds.
SOCKET_TIMEOUT_S = 4.0
_URL_PARTS = re.compile(r"[/:@?&=#,;!+\s]+")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
REDACTED = "***"


class UnusableUrl(ValueError):
    """An apprise URL that cannot be used; the message never quotes the URL itself."""


@dataclass(frozen=True)
class Target:
    """One place notifications go: the apprise plugin, shown only in its privacy form."""

    plugin: Any
    shown: str
    hidden: tuple[str, ...]  # parts of the raw URL that `shown` hides

    def redact(self, text: str) -> str:
        for part in self.hidden:
            text = text.replace(part, REDACTED)
        return text


def check_url(url: object) -> str | None:
    """What is wrong with `url` as an apprise URL, or None. Never quotes the URL."""
    try:
        target(url)
    except UnusableUrl as exc:
        return str(exc)
    return None


def target(url: object) -> Target:
    """The target for an apprise URL; UnusableUrl says why there is none."""
    if not isinstance(url, str) or not url.strip():
        raise UnusableUrl("a notification target must be a non-empty apprise URL")
    url = url.strip()
    scheme = _SCHEME.match(url)
    if scheme is None:
        raise UnusableUrl("not an apprise URL (SCHEME://...), e.g. json://hooks.example.com/ops")
    unusable = UnusableUrl(
        f"apprise cannot use this {scheme.group(1)}:// URL: the scheme is unknown or the "
        "URL is malformed (see https://github.com/caronc/apprise/wiki for each service's form)"
    )
    try:
        plugin = _apprise().Apprise.instantiate(url)
        shown = plugin.url(privacy=True).split("?", 1)[0] if plugin is not None else ""
    except Exception:  # noqa: BLE001 - whatever a plugin raises, the URL is unusable
        raise unusable from None
    if plugin is None:
        raise unusable
    for timeout in ("socket_connect_timeout", "socket_read_timeout"):
        given = getattr(plugin, timeout, None)
        if isinstance(given, int | float):
            setattr(plugin, timeout, min(given, SOCKET_TIMEOUT_S))
    return Target(plugin, shown, _hidden_parts(url, shown))


def shown_scheme(url: object) -> str:
    """What may be said about a URL that did not parse: its scheme, or nothing."""
    found = _SCHEME.match(url.strip()) if isinstance(url, str) else None
    return f"{found.group(1)}://…" if found else "(not a URL)"


def _hidden_parts(url: str, shown: str) -> tuple[str, ...]:
    """Every piece of the raw URL (and its decoded form) that the privacy form leaves out,
    longest first, so a token is replaced whole before any piece of it."""
    parts: set[str] = set()
    for piece in _URL_PARTS.split(url) + _URL_PARTS.split(unquote(url)):
        if len(piece) >= 3 and piece not in shown and unquote(piece) not in shown:
            parts |= {piece, unquote(piece)}
    return tuple(sorted(parts, key=len, reverse=True))


class _AppriseMessages(logging.Handler):
    """apprise's warnings and errors, kept per thread while a send runs there."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_thread: dict[int, list[str]] = {}
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            kept = self.by_thread.get(record.thread or 0)
            if kept is not None:
                kept.append(record.getMessage())

    def watch(self) -> None:
        """Keep what apprise says in the calling thread from now on."""
        with self._guard:
            self.by_thread[threading.get_ident()] = []

    def take(self, thread: int) -> list[str]:
        with self._guard:
            return self.by_thread.pop(thread, [])


MESSAGES = _AppriseMessages()
_setup = threading.Lock()


def _apprise() -> Any:
    """apprise, imported when a plan or the environment names a target (its plugins take a
    moment to load), with its logger routed to `MESSAGES` only."""
    import apprise

    with _setup:
        logger = logging.getLogger("apprise")
        if MESSAGES not in logger.handlers:
            logger.addHandler(MESSAGES)
            logger.propagate = False
    return apprise
