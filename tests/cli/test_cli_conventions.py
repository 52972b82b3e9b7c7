"""Command-line conventions a Terraform user expects: --version, flags shown and written as
flags, and usage errors that exit 1 (exit 2 means "changes present")."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import orchestrator
from orchestrator.cli import app
from tests.engine.sandbox_kit import cli

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def command_paths(command=None, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of the CLI, as the words that call it."""
    command = command or typer.main.get_command(app)
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += command_paths(sub, (*path, name))
    return found


ALL_COMMANDS = command_paths()


def test_version_prints_the_package_version_and_exits_0():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"orchestrator {orchestrator.__version__}\n"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == orchestrator.__version__


def test_every_command_is_reached_by_the_walk():
    names = {" ".join(p) for p in ALL_COMMANDS}
    assert {"plan", "apply", "lockdown", "emulator serve", "state show", "log verify"} <= names


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "(root)")
def test_help_shows_flags_as_flags(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "(root)")
def test_an_unknown_option_exits_1_on_every_command(project, path):
    result = runner.invoke(app, [*path, "--bogus"])
    assert result.exit_code == 1, result.output
    assert "No such option: --bogus" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["state", "show"], "Missing argument"),
        (["emulator", "serve", "--port", "abc"], "Invalid value for '--port'"),
        (["audit", "--fail-on", "severe"], "--fail-on severe"),
        (["plan", "--out"], "requires an argument"),
        (["no-such-command"], "No such command"),
        ([], "Usage:"),
        (["rotate"], "say which keys"),
        (["lockdown"], "pass --all"),
        (["import", "--label", "x"], "use either --all"),
    ],
)
def test_usage_errors_exit_1(project, args, says):
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert says in result.output


def test_detailed_exitcode_with_a_bad_option_exits_1_not_2(project):
    """As a process, the way a script runs it: 2 would read as "changes present"."""
    ran = subprocess.run(
        [sys.executable, "-m", "orchestrator", "plan", "--detailed-exitcode", "--bogus"],
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert ran.returncode == 1, ran.stderr
    assert "No such option: --bogus" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (project / "state" / "sandbox.json").exists()  # nothing ran


@pytest.mark.parametrize(
    "written", ["--auto-approve=true", "--auto-approve=TRUE", "--auto-approve"]
)
def test_auto_approve_written_as_terraform_users_write_it(project, written):
    cli("apply", written)
    assert "No changes" in cli("plan").output


def test_a_flag_set_to_false_is_off(project):
    refused = cli("apply", "--auto-approve=false", code=1)
    assert "Apply cancelled" in refused.output
    assert not (project / "state" / "example.state.json").exists()


def test_refresh_false_means_no_refresh(project):
    cli("plan", "--refresh=false")
    assert not (project / "state" / "sandbox.json").exists()  # no exchange was opened


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["apply", "--auto-approve", "true"], "--auto-approve is a flag"),
        (["apply", "--auto-approve", "false"], "--auto-approve is a flag"),
        (["apply", "--auto-approve=maybe"], "a flag takes true or false, not 'maybe'"),
    ],
)
def test_a_flag_given_a_separate_or_bad_value_is_a_clear_usage_error(project, args, says):
    result = cli(*args, code=1)
    assert says in result.output
    assert not (project / "state" / "example.state.json").exists()


def test_a_flag_value_after_double_dash_is_left_alone(project):
    from orchestrator.cli.conventions import flags_with_values

    command = typer.main.get_command(app).commands["apply"]
    assert flags_with_values(command, ["--auto-approve=true", "--", "--auto-approve=no"]) == [
        "--auto-approve",
        "--",
        "--auto-approve=no",
    ]
    assert flags_with_values(command, ["--target=a", "--auto-approve=no"]) == ["--target=a"]
