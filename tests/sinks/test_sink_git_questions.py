"""A sink asks git about each path once per run, not on every write."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.sinks import KeyMaterial, open_sink
from orchestrator.sinks import paths as sink_paths
from orchestrator.sinks.errors import UnsafeSinkPath


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text("secrets/\n")
    return tmp_path


def material(label: str) -> KeyMaterial:
    return KeyMaterial(
        subaccount="s",
        label=label,
        api_key="k" * 64,
        key_type="hmac",
        secret="x" * 64,
        created_at=datetime.now(UTC),
        generation=1,
    )


def test_each_path_is_cleared_by_git_once(repo: Path, monkeypatch):
    questions: list[tuple] = []
    real = sink_paths._git
    monkeypatch.setattr(
        sink_paths, "_git", lambda args, cwd: questions.append(tuple(args)) or real(args, cwd)
    )
    sink = open_sink("file:secrets/", repo)
    for _ in range(3):
        sink.write_pending(material("bot"))
        sink.promote("s/bot")
    asked = [q[-1] for q in questions]
    assert len(asked) == len(set(asked)) * 2  # ls-files and check-ignore, once per path


def test_a_path_git_refuses_is_refused_every_time(repo: Path):
    sink = open_sink("file:exposed/", repo)
    for _ in range(2):
        with pytest.raises(UnsafeSinkPath):
            sink.write_pending(material("bot"))


def test_git_never_sees_the_callers_secrets(repo: Path, monkeypatch):
    canary = "CANARYsecretCANARYsecretCANARYsecretCANARYsecretCANARYsecret0002"
    for name in ("BINANCE_API_SECRET", "VAULT_TOKEN", "GIT_DIR"):
        monkeypatch.setenv(name, canary)
    seen: list[dict] = []
    real_run = subprocess.run

    def spy(*args, **kwargs):
        seen.append(dict(kwargs.get("env") or {}))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(sink_paths.subprocess, "run", spy)
    open_sink("file:secrets/", repo).write_pending(material("bot"))
    assert seen and all(kwargs for kwargs in seen)
    assert not any(canary in value for env in seen for value in env.values())
