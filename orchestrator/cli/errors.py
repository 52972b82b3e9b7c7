"""Expected failures and what the user sees for each: a message on stderr and an exit code,
never a traceback.

Each table maps exception types to a `Failure`, first match wins. The tables import their
exception classes when a command starts, not when `orchestrator --help` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NoReturn

import typer


class UserError(Exception):
    """A problem the user can fix; printed as one message, exit 1, no traceback."""


@dataclass(frozen=True)
class Failure:
    """The lines printed to stderr for a failure, their colour (None: plain) and the exit
    code."""

    lines: tuple[str, ...]
    exit_code: int = 1
    color: str | None = "red"

    def exit(self) -> NoReturn:
        for line in self.lines:
            if self.color:
                typer.secho(line, fg=self.color, err=True)
            else:
                typer.echo(line, err=True)
        raise typer.Exit(self.exit_code) from None


ErrorTable = Sequence[tuple[tuple[type[BaseException], ...], Callable[[BaseException], Failure]]]

INTERRUPTED_EXIT_CODE = 130


def usage_error(message: str) -> NoReturn:
    """Refuse a command line that cannot work, before anything runs."""
    Failure((f"Error: {message}",)).exit()


def project_errors() -> ErrorTable:
    """The failures of commands that work on a project and its exchange."""
    from orchestrator.config import PlanError, UnknownAccount
    from orchestrator.engine.operations import Refused
    from orchestrator.engine.workspace import StaleChangeset, StateOwnedElsewhere
    from orchestrator.exchange.errors import ExchangeError
    from orchestrator.sinks.errors import SinkError
    from orchestrator.store.errors import StoreError

    return (
        ((PlanError,), _plan_problems),
        (
            (
                UserError,
                UnknownAccount,
                Refused,
                StaleChangeset,
                StateOwnedElsewhere,
                ExchangeError,
                StoreError,
                SinkError,
            ),
            _error,
        ),
        ((OSError,), _unusable_path),
        ((KeyboardInterrupt,), _interrupted),
    )


def emulator_errors() -> ErrorTable:
    """The failures of `emulator serve`: a bad master key or data file, a port in use."""
    from orchestrator.emulator.master import MasterKeyError
    from orchestrator.emulator.persist import DataFileError

    return (((MasterKeyError, DataFileError, OSError, ValueError), _plain_error),)


@contextlib.contextmanager
def reported(errors: Callable[[], ErrorTable]) -> Iterator[None]:
    """Turn every failure the table knows into its message and exit code; others go on."""
    table = errors()
    try:
        yield
    except (Exception, KeyboardInterrupt) as exc:
        failure = failure_for(exc, table)
        if failure is None:
            raise
        failure.exit()


def user_errors() -> contextlib.AbstractContextManager[None]:
    """Report the expected failures of a project command (`project_errors`)."""
    return reported(project_errors)


def failure_for(exc: BaseException, table: ErrorTable) -> Failure | None:
    for types, failure in table:
        if isinstance(exc, types):
            return failure(exc)
    return None


def _plan_problems(exc) -> Failure:
    return Failure(tuple(problem.format() for problem in exc.problems))


def _error(exc: BaseException) -> Failure:
    return Failure((f"Error: {exc}",))


def _plain_error(exc: BaseException) -> Failure:
    return Failure((f"error: {exc}",), color=None)


def _unusable_path(exc) -> Failure:
    """The project's files: a missing, unwritable or misplaced path."""
    where = exc.filename or "a project file"
    return Failure(
        (
            f"Error: cannot use {where}: {exc.strerror or exc}. Check that the folder exists, "
            "is a directory, and is writable by this user.",
        )
    )


def _interrupted(exc: BaseException) -> Failure:
    return Failure(
        (
            "Interrupted. Anything half done is in the journal: the next `orchestrator plan` "
            "or `apply` reconciles it with the live account.",
        ),
        exit_code=INTERRUPTED_EXIT_CODE,
        color="yellow",
    )
