import os
import stat
import subprocess

import pytest
from sink_material import CANARY, make_material

from orchestrator.sinks import (
    NoPendingKey,
    SinkConflict,
    UnsafeSinkPath,
    open_sink,
)
from orchestrator.sinks.dotenv import parse_dotenv


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_file_modes_under_open_umask(tmp_path, open_umask):
    sink = open_sink("file:secrets/", tmp_path)
    ref = sink.write_pending(make_material())
    sink.promote("quant/Bot")
    assert ref.endswith("secrets/quant/Bot.pending.json")
    assert _mode(tmp_path / "secrets") == 0o700
    assert _mode(tmp_path / "secrets" / "quant") == 0o700
    assert _mode(tmp_path / "secrets" / "quant" / "Bot.json") == 0o600


def test_existing_loose_secrets_dir_is_tightened(tmp_path, open_umask):
    (tmp_path / "secrets").mkdir(mode=0o777)
    open_sink("file:secrets", tmp_path).write_pending(make_material())
    assert _mode(tmp_path / "secrets") == 0o700


def test_file_lifecycle_pending_current_held(tmp_path):
    sink = open_sink("file:secrets/", tmp_path)
    address = "quant/Bot"
    assert sink.read_current(address) is None and not sink.exists(address)
    sink.write_pending(make_material(1))
    assert sink.read_pending(address).generation == 1 and not sink.exists(address)
    sink.promote(address)
    assert sink.read_current(address).generation == 1 and sink.read_pending(address) is None
    sink.write_pending(make_material(2, api_key="N" * 64))
    assert sink.read_current(address).generation == 1
    sink.promote(address)
    current, held = sink.read_current(address), sink.read_held(address)
    assert (current.generation, [m.generation for m in held]) == (2, [1])
    assert current.secret.get_secret_value() == f"{CANARY}-g2"
    assert (tmp_path / "secrets/quant/Bot.g1.json").exists()
    sink.promote(address, generation=2)  # re-run after a crash: already done
    with pytest.raises(NoPendingKey):
        sink.promote(address, generation=3)
    sink.destroy(address, held[0].api_key)
    assert sink.read_held(address) == []
    sink.destroy(address, current.api_key)
    assert not sink.exists(address) and sink.read_current(address) is None
    assert list((tmp_path / "secrets/quant").iterdir()) == []


def test_file_json_fields(tmp_path):
    import json

    sink = open_sink("file:secrets/", tmp_path)
    sink.write_pending(make_material(key_type="ed25519", api_key=None))
    data = json.loads((tmp_path / "secrets/quant/Bot.pending.json").read_text())
    assert set(data) == {
        "subaccount",
        "label",
        "apiKey",
        "key_type",
        "private_key",
        "created",
        "generation",
    }
    assert data["private_key"].startswith("-----BEGIN PRIVATE KEY-----")


def test_ed25519_pending_gets_its_api_key_later(tmp_path):
    sink = open_sink("file:secrets/", tmp_path)
    sink.write_pending(make_material(key_type="ed25519", api_key=None))
    assert sink.read_pending("quant/Bot").api_key is None
    sink.write_pending(make_material(key_type="ed25519", api_key="PUB" * 20))
    sink.promote("quant/Bot")
    assert sink.read_current("quant/Bot").api_key == "PUB" * 20


def test_dotenv_hmac_content(tmp_path, open_umask):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    sink.write_pending(make_material())
    sink.promote("quant/Bot")
    path = tmp_path / "bots/copy.env"
    values = parse_dotenv(path.read_text())
    assert values["BINANCE_API_KEY"] == "K" * 60 + "WXYZ"
    assert values["BINANCE_API_SECRET"] == f"{CANARY}-g1"
    assert "BINANCE_PRIVATE_KEY_PATH" not in values
    assert _mode(path) == 0o600 and _mode(tmp_path / "bots") == 0o700


def test_dotenv_ed25519_points_to_private_pem(tmp_path, open_umask):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    sink.write_pending(make_material(key_type="ed25519"))
    sink.promote("quant/Bot")
    values = parse_dotenv((tmp_path / "bots/copy.env").read_text())
    pem = values["BINANCE_PRIVATE_KEY_PATH"]
    assert os.path.isabs(pem) and pem == str(tmp_path / "bots/copy.env.g1.pem")
    assert "BINANCE_API_SECRET" not in values
    assert _mode(pem) == 0o600 and "BEGIN PRIVATE KEY" in open(pem).read()
    assert CANARY not in (tmp_path / "bots/copy.env").read_text()


def test_dotenv_rotation_holds_the_old_generation_and_destroy_drops_its_pem(tmp_path):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    for generation in (1, 2):
        sink.write_pending(make_material(generation, "ed25519", api_key=f"{'K' * 63}{generation}"))
        sink.promote("quant/Bot")
    assert sink.read_current("quant/Bot").generation == 2
    assert [m.generation for m in sink.read_held("quant/Bot")] == [1]
    assert (tmp_path / "bots/copy.env.g1").exists()
    sink.destroy("quant/Bot", "K" * 63 + "1")
    assert not (tmp_path / "bots/copy.env.g1.pem").exists()
    assert (tmp_path / "bots/copy.env.g2.pem").exists()
    assert sink.read_held("quant/Bot") == []
    sink.destroy("quant/Bot", "K" * 63 + "2")
    assert not sink.exists("quant/Bot") and list((tmp_path / "bots").iterdir()) == []


def test_dotenv_shared_by_two_keys_refused(tmp_path):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    sink.write_pending(make_material(label="A"))
    with pytest.raises(SinkConflict, match="one key"):
        sink.write_pending(make_material(label="B"))
    other = open_sink("dotenv:bots/copy.env", tmp_path)
    with pytest.raises(SinkConflict, match="quant/A"):
        other.write_pending(make_material(label="B"))
    assert other.read_pending("quant/A").label == "A"


def test_dotenv_refuses_overwriting_a_hand_written_file(tmp_path):
    (tmp_path / "bots").mkdir()
    (tmp_path / "bots/copy.env").write_text("BINANCE_API_KEY=mine\n")
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    with pytest.raises(SinkConflict, match="did not write"):
        sink.write_pending(make_material())
    assert not (tmp_path / "bots/copy.env.pending").exists()


@pytest.fixture
def repo(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q", ".")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / ".gitignore").write_text("secrets/\n*.env*\n")
    (tmp_path / "tracked").mkdir()
    (tmp_path / "tracked/copy.env").write_text("x=1\n")
    git("add", "-f", ".gitignore", "tracked/copy.env")
    git("commit", "-q", "-m", "init")
    return tmp_path


def test_ignored_paths_accepted_in_git_repo(repo):
    open_sink("file:secrets/", repo).write_pending(make_material())
    open_sink("dotenv:bots/copy.env", repo).write_pending(make_material(key_type="ed25519"))
    assert (repo / "bots/copy.env.g1.pem").exists()


def test_not_ignored_path_refused_nothing_written(repo):
    sink = open_sink("file:keys/", repo)
    with pytest.raises(UnsafeSinkPath, match="does not ignore"):
        sink.write_pending(make_material())
    assert not (repo / "keys").exists()


def test_tracked_path_refused(repo):
    sink = open_sink("dotenv:tracked/copy.env", repo)
    with pytest.raises(UnsafeSinkPath, match="git tracks"):
        sink.write_pending(make_material())
    assert not (repo / "tracked/copy.env.pending").exists()


def test_not_a_repo_is_allowed(tmp_path):
    open_sink("file:keys/", tmp_path).write_pending(make_material())


def test_symlinked_directory_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "secrets").symlink_to(tmp_path / "real")
    sink = open_sink("file:secrets/", tmp_path)
    with pytest.raises(UnsafeSinkPath, match="symlink"):
        sink.write_pending(make_material())
    assert list((tmp_path / "real").iterdir()) == []


def test_symlinked_file_refused(tmp_path):
    (tmp_path / "bots").mkdir()
    (tmp_path / "bots/copy.env.pending").symlink_to(tmp_path / "victim")
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    with pytest.raises(UnsafeSinkPath, match="symlink"):
        sink.write_pending(make_material())
    assert not (tmp_path / "victim").exists()


def test_errors_never_show_the_secret(tmp_path):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    sink.write_pending(make_material(label="A"))
    with pytest.raises(SinkConflict) as caught:
        sink.write_pending(make_material(label="B"))
    assert CANARY not in str(caught.value) and CANARY not in repr(caught.value)


@pytest.mark.parametrize("spec", ["file:secrets/", "dotenv:bots/copy.env"])
def test_discard_pending_keeps_current(tmp_path, spec):
    sink = open_sink(spec, tmp_path)
    sink.discard_pending("quant/Bot")  # nothing there: no error
    sink.write_pending(make_material(1, key_type="ed25519"))
    sink.promote("quant/Bot")
    sink.write_pending(make_material(2, key_type="ed25519", api_key=None))
    sink.discard_pending("quant/Bot")
    assert sink.read_pending("quant/Bot") is None
    assert sink.read_current("quant/Bot").generation == 1
    assert not (tmp_path / "bots/copy.env.g2.pem").exists()
    with pytest.raises(NoPendingKey):
        sink.promote("quant/Bot")
