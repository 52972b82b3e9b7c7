"""Helpers for CLI tests against the in-process sandbox: run a command with stdin, and read
the live keys from the exchange's side (the emulator), not from the tool's state."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()


def run(*args: str, stdin: str | None = None, code: int | None = 0, wiring=None):
    """The CLI in-process with `stdin` as its input (None: end of input at once)."""
    result = runner.invoke(app, list(args), input=stdin, catch_exceptions=False, obj=wiring)
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def live_keys(project: Path) -> dict[str, tuple[str, str]]:
    """Every live key of the sandbox account: api key -> (sub-account email, apiName)."""
    from orchestrator.wiring import open_sandbox

    emulator = open_sandbox(project / "state" / "sandbox.json")
    return {
        key.api_key: (sub.email, key.api_name)
        for sub in emulator.accounts.subs.values()
        for key in sub.keys.values()
    }


def live_names(project: Path) -> list[str]:
    return sorted(name for _, name in live_keys(project).values())


def add_unmanaged_key(project: Path, name: str = "mystery-key") -> str:
    """A key made out of band (say in the web UI) in the plan's sub-account quant."""
    from orchestrator.config import ExchangeSettings
    from orchestrator.wiring import open_exchange

    async def create() -> str:
        async with open_exchange(ExchangeSettings(), project) as client:
            created = await client.create_api_key("quant@example.com", name, frozenset(), [])
            return created.api_key

    return asyncio.run(create())
