"""The CLI's map from expected failures to a message and an exit code, and its cold start."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli.errors import UserError, failure_for, project_errors, user_errors

HEAVY_MODULES = ("httpx", "pydantic", "cryptography", "yaml", "rich", "orchestrator.engine")


@pytest.mark.parametrize(
    ("exc", "first_line", "exit_code"),
    [
        (UserError("no such label"), "Error: no such label", 1),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "state"),
            "Error: cannot use state: No such file or directory. Check that the folder exists",
            1,
        ),
        (KeyboardInterrupt(), "Interrupted. Anything half done is in the journal", 130),
    ],
)
def test_expected_failures_map_to_a_message_and_an_exit_code(exc, first_line, exit_code):
    failure = failure_for(exc, project_errors())
    assert failure is not None
    assert failure.lines[0].startswith(first_line)
    assert failure.exit_code == exit_code


def test_an_unexpected_exception_is_not_swallowed():
    assert failure_for(ZeroDivisionError(), project_errors()) is None
    with pytest.raises(ZeroDivisionError), user_errors():
        1 / 0  # noqa: B018


def test_user_errors_prints_to_stderr_and_exits_with_the_code():
    app = typer.Typer()

    @app.command()
    def fail() -> None:
        with user_errors():
            raise UserError("the plan names no key")

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 1
    assert result.stderr == "Error: the plan names no key\n"
    assert result.stdout == ""


def test_importing_the_cli_loads_no_heavy_module():
    """`orchestrator --help` stays fast: the commands import the engine when they run."""
    probe = "import sys, orchestrator.cli; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [m for m in loaded if m.startswith(HEAVY_MODULES)]
