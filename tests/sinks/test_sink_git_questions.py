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
    listed: list[str] = []
    checked: list[str] = []
    real = sink_paths._git

    def spy(args, cwd, stdin=""):
        if "ls-files" in args:
            listed.extend(args[args.index("--") + 1 :])
        else:
            checked.extend(name for name in stdin.split("\0") if name)
        return real(args, cwd, stdin)

    monkeypatch.setattr(sink_paths, "_git", spy)
    sink = open_sink("file:secrets/", repo)
    for _ in range(3):
        sink.write_pending(material("bot"))
        sink.promote("s/bot")
    assert listed and sorted(listed) == sorted(set(listed))
    assert sorted(checked) == sorted(listed)


def test_many_paths_cost_two_git_processes(repo: Path, monkeypatch):
    """A plan's worth of paths is put to git in one question of each kind."""
    calls: list[str] = []
    real = sink_paths._git
    monkeypatch.setattr(
        sink_paths,
        "_git",
        lambda args, cwd, stdin="": (
            calls.append("ls-files" if "ls-files" in args else args[0]) or real(args, cwd, stdin)
        ),
    )
    git = sink_paths.GitCheck()
    ignored = [repo / "secrets" / "s" / f"bot{i}.json" for i in range(100)]
    exposed = [repo / "bots" / f"bot{i}.env" for i in range(100)]
    git.ask([*ignored, *exposed])
    assert sorted(calls) == ["check-ignore", "ls-files"]
    for path in ignored:
        git.refuse(path)
    for path in exposed:
        with pytest.raises(UnsafeSinkPath, match="does not ignore it"):
            git.refuse(path)
    assert len(calls) == 2


def test_a_tracked_path_is_refused_even_when_ignored(repo: Path):
    (repo / "secrets").mkdir()
    (repo / "secrets" / "old.json").write_text("{}")
    subprocess.run(["git", "add", "-f", "secrets/old.json"], cwd=repo, check=True)
    git = sink_paths.GitCheck()
    git.ask([repo / "secrets" / "old.json", repo / "secrets" / "new.json"])
    with pytest.raises(UnsafeSinkPath, match="git tracks it"):
        git.refuse(repo / "secrets" / "old.json")
    git.refuse(repo / "secrets" / "new.json")


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
