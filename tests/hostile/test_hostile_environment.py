"""A broken project folder or a Ctrl-C ends in a message and an exit code, not a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()


def test_state_path_that_is_a_file_is_reported_with_its_name(project: Path):
    shutil.rmtree(project / "state")
    (project / "state").write_text("not a folder")
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = runner.invoke(app, command, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert "state/example.state.json" in result.output and "Not a directory" in result.output


def test_ctrl_c_says_the_journal_will_reconcile(project: Path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("orchestrator.engine.operations.apply", interrupted)
    result = runner.invoke(app, ["apply", "--auto-approve"], catch_exceptions=False)
    assert result.exit_code == 130
    assert "journal" in result.output and "Traceback" not in result.output
