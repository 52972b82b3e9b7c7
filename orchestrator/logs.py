"""Logging setup: structlog to stderr, every event through the secret-redacting processor."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from orchestrator.exchange.logging import redact_secrets


def configure(*, verbose: bool = False, stream: TextIO | None = None) -> None:
    """INFO events (one per exchange call) with --verbose, else warnings and errors only."""
    level = logging.INFO if verbose else logging.WARNING
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
