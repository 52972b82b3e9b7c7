"""What apply would refuse about a plan's sinks, found by asking the sinks before any write."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestrator.sinks.planning import SinkUse, refusals


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text("secrets/\nbots/\n")
    return tmp_path


def refused(uses: list[SinkUse], project: Path, **env: str) -> dict[int, str]:
    return {i: r.message for i, r in refusals(uses, project, env=env).items()}


def test_a_plan_apply_can_write_has_no_refusals(repo: Path):
    uses = [
        SinkUse("file:secrets/", "quant/Bot"),
        SinkUse("file:secrets/", "quant/Tax"),
        SinkUse("dotenv:bots/copy.env", "copy/Bot"),
    ]
    assert refused(uses, repo) == {}
    assert sorted(p.name for p in repo.iterdir()) == [".git", ".gitignore"]  # nothing written


def test_two_keys_in_one_dotenv_file(repo: Path):
    uses = [SinkUse("dotenv:bots/a.env", "quant/Bot"), SinkUse("dotenv:bots/a.env", "quant/Tax")]
    assert list(refused(uses, repo)) == [1]
    assert "used for both quant/Bot and quant/Tax" in refused(uses, repo)[1]


def test_two_spellings_of_one_dotenv_file(repo: Path):
    uses = [
        SinkUse("dotenv:bots/a.env", "quant/Bot"),
        SinkUse("dotenv:./bots/../bots/a.env", "quant/Tax"),
    ]
    found = refused(uses, repo)
    assert list(found) == [1]
    assert "also writes for quant/Bot" in found[1]


def test_a_dotenv_file_inside_a_file_sinks_folder(repo: Path):
    uses = [
        SinkUse("file:secrets/", "quant/Bot"),
        SinkUse("dotenv:secrets/quant/Bot.json", "copy/Bot"),
    ]
    found = refused(uses, repo)
    assert list(found) == [1]
    assert "secrets/quant/Bot.json" in found[1] and "quant/Bot" in found[1]


def test_paths_git_would_commit(repo: Path):
    (repo / "tracked").mkdir()
    (repo / "tracked" / "copy.env").write_text("x\n")
    subprocess.run(["git", "add", "tracked/copy.env"], cwd=repo, check=True)
    uses = [
        SinkUse("dotenv:tracked/copy.env", "copy/Bot"),
        SinkUse("file:keys/", "quant/Bot"),
        SinkUse("file:secrets/", "quant/Tax"),
    ]
    found = refused(uses, repo)
    assert sorted(found) == [0, 1]
    assert "git tracks it" in found[0]
    assert "git does not ignore it" in found[1]


def test_a_symlink_and_an_escape(repo: Path, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (repo / "secrets").mkdir()
    (repo / "secrets" / "linked").symlink_to(elsewhere)
    uses = [
        SinkUse("file:secrets/linked/", "quant/Bot"),
        SinkUse("file:../outside/", "quant/Tax"),
        SinkUse("file:secrets/", "quant/Ok"),
    ]
    found = refused(uses, repo)
    assert sorted(found) == [0, 1]
    assert "is a symlink" in found[0]
    assert "leaves the project directory" in found[1]
    assert list(elsewhere.iterdir()) == []


def test_vault_without_its_settings_is_an_environment_refusal(repo: Path):
    uses = [SinkUse("vault:secret/orc", "quant/Bot")]
    [refusal] = refusals(uses, repo, env={}).values()
    assert refusal.environment and "VAULT_ADDR" in refusal.message
    settings = {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t"}
    assert refusals(uses, repo, env=settings) == {}  # checked without calling Vault


def test_outside_a_git_work_tree_only_the_path_rules_apply(tmp_path: Path):
    uses = [SinkUse("file:anywhere/", "quant/Bot"), SinkUse("dotenv:bots/a.env", "copy/Bot")]
    assert refused(uses, tmp_path) == {}
