"""The data file: written atomically after each change, read back on restart."""

from __future__ import annotations

import json
import os
import stat

import pytest
from emulator_kit import SUBACCOUNT_API, VIRTUAL, HmacSigner, SignedClient, create_hmac_key

from orchestrator.emulator import persist
from orchestrator.emulator.core import Emulator


def client_for(emulator: Emulator) -> SignedClient:
    return SignedClient(emulator, HmacSigner(emulator.master.api_key, emulator.master.secret))


def test_state_and_generated_master_survive_a_restart(tmp_path, clock):
    path = tmp_path / "state" / "sandbox.json"
    first = Emulator(path, clock=clock)
    assert first.master_generated and path.exists()
    master = client_for(first)
    email = master.ok("POST", VIRTUAL, {"subAccountString": "keep"})["email"]
    key = create_hmac_key(master, email)

    second = Emulator(path, clock=clock)
    assert not second.master_generated
    assert second.master.api_key == first.master.api_key
    again = client_for(second)
    rows = again.ok("GET", SUBACCOUNT_API, {"email": email})["rows"]
    assert [r["apikey"] for r in rows] == [key["apiKey"]]
    sub = again.with_signer(HmacSigner(key["apiKey"], key["secretKey"]))
    assert sub.ok("GET", "/sapi/v1/account/apiRestrictions")["enableReading"] is True
    assert again.ok("POST", VIRTUAL, {"subAccountString": "next"})["email"].endswith(
        email.partition("@")[2]
    )


def test_missing_file_starts_empty_and_leftover_temp_file_is_ignored(tmp_path, clock):
    path = tmp_path / "sandbox.json"
    (tmp_path / ".sandbox.json.abc.tmp").write_text('{"half": ')
    emulator = Emulator(path, clock=clock)
    assert emulator.accounts.subs == {}
    assert json.loads(path.read_text())["version"] == 1


def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "data.json"
    persist.save(path, {"version": 1, "n": 1})

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        persist.save(path, {"version": 1, "n": 2})
    assert json.loads(path.read_text()) == {"version": 1, "n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_corrupt_data_file_is_reported_not_overwritten(tmp_path):
    path = tmp_path / "data.json"
    path.write_text("{not json")
    with pytest.raises(persist.DataFileError):
        Emulator(path)
    assert path.read_text() == "{not json"


def test_master_from_environment_is_not_written_to_the_file(tmp_path, monkeypatch, clock):
    monkeypatch.setenv("BINANCE_API_KEY", "K" * 64)
    monkeypatch.setenv("BINANCE_API_SECRET", "S" * 64)
    path = tmp_path / "data.json"
    emulator = Emulator(path, clock=clock)
    client_for(emulator).ok("POST", VIRTUAL, {"subAccountString": "env"})
    assert "S" * 64 not in path.read_text()


def test_given_master_is_persisted_only_when_asked(tmp_path, clock):
    from orchestrator.emulator.master import hmac_master

    path = tmp_path / "data.json"
    Emulator(path, clock=clock, master=hmac_master("G" * 64, "T" * 64))
    assert not path.exists()
    Emulator(path, clock=clock, master=hmac_master("G" * 64, "T" * 64), persist_master=True)
    reloaded = Emulator(path, clock=clock)
    assert reloaded.master.api_key == "G" * 64 and not reloaded.master_generated


def journal_mode(path) -> int:
    return stat.S_IMODE(persist.journal_path(path).stat().st_mode)


def test_journal_holding_secrets_is_private_whatever_the_umask(tmp_path, clock):
    path = tmp_path / "sandbox.json"
    old_umask = os.umask(0)
    try:
        master = client_for(Emulator(path, clock=clock))
        email = master.ok("POST", VIRTUAL, {"subAccountString": "open"})["email"]
        create_hmac_key(master, email)
    finally:
        os.umask(old_umask)
    assert persist.journal_path(path).exists()
    assert journal_mode(path) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_readable_journal_is_made_private_on_open(tmp_path, clock):
    path = tmp_path / "sandbox.json"
    master = client_for(Emulator(path, clock=clock))
    master.ok("POST", VIRTUAL, {"subAccountString": "open"})
    os.chmod(persist.journal_path(path), 0o644)
    os.chmod(path, 0o644)
    Emulator(path, clock=clock)
    assert journal_mode(path) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
