"""CLI fixtures: a git-initialised project from `init_project`, run through typer's CliRunner."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

BINANCE_VARS = ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE")


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    from orchestrator.config import init_project

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    init_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in BINANCE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ORCHESTRATOR_NOW", raising=False)
    return tmp_path
