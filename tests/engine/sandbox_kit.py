"""Helpers for the end-to-end sandbox tests: the CLI in-process, the sandbox, sink secrets."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()


def cli(*args: str, code: int | None = 0, wiring=None):
    """The CLI in-process; `wiring` (orchestrator.wiring.Wiring) replaces its exchange."""
    result = runner.invoke(app, list(args), catch_exceptions=False, obj=wiring)
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def sandbox(project: Path):
    from orchestrator.wiring import open_sandbox

    return open_sandbox(project / "state" / "sandbox.json")


def hmac_plan(project: Path) -> None:
    text = (project / "plans" / "example.yaml").read_text()
    (project / "plans" / "example.yaml").write_text(
        text.replace("key_type: ed25519", "key_type: hmac")
    )


def all_secrets(project: Path) -> list[str]:
    found = []
    for path in (project / "secrets").rglob("*.json"):
        data = json.loads(path.read_text())
        found += [v for k, v in data.items() if k in ("secret", "private_key") and v]
    return found
