import json
import os
import stat
from datetime import UTC, datetime

import pytest

from orchestrator.store import (
    CorruptStateError,
    KeyRecord,
    LineageMismatch,
    LocalFileBackend,
    NoBackupError,
    StaleStateError,
    new_state,
    next_serial,
)


def _key(label: str = "Bot") -> KeyRecord:
    return KeyRecord(
        subaccount="quant",
        email="q@example.com",
        label=label,
        api_key="A" * 64,
        api_name=f"orc-{label}-g1",
        generation=1,
        key_type="ed25519",
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        permissions=["read"],
        ips=[],
        sink="file:secrets/",
    )


@pytest.fixture
def backend(tmp_path):
    return LocalFileBackend(tmp_path)


def _saved(backend, plan="main", serial=1):
    state = new_state(plan).model_copy(update={"serial": serial})
    return backend.save_state(state)


def test_missing_state_is_none(backend):
    assert backend.load_state("main") is None


def test_save_then_load_round_trips_with_private_mode(backend):
    state = next_serial(new_state("main"))
    state.keys["quant/Bot"] = _key()
    backend.save_state(state)
    assert backend.load_state("main") == state
    assert stat.S_IMODE(os.stat(backend.state_path("main")).st_mode) == 0o600
    leftovers = [p.name for p in backend.state_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_first_save_gives_a_lineage(backend):
    saved = backend.save_state(new_state("main").model_copy(update={"lineage": "", "serial": 1}))
    assert len(saved.lineage) == 36
    assert backend.load_state("main").lineage == saved.lineage


def test_serial_must_grow(backend):
    state = _saved(backend)
    with pytest.raises(StaleStateError, match="serial 1"):
        backend.save_state(state)
    backend.save_state(next_serial(state))
    with pytest.raises(StaleStateError, match="Someone saved it"):
        backend.save_state(next_serial(state))  # a second writer that loaded serial 1
    assert backend.load_state("main").serial == 2


def test_first_save_needs_serial_one(backend):
    with pytest.raises(StaleStateError):
        backend.save_state(new_state("main"))


def test_previous_version_kept_as_backup(backend):
    first = _saved(backend)
    second = next_serial(first)
    second.keys["quant/Bot"] = _key()
    backend.save_state(second)
    backup = json.loads(backend.backup_path("main").read_text())
    assert backup["serial"] == 1 and backup["keys"] == {}
    assert stat.S_IMODE(os.stat(backend.backup_path("main")).st_mode) == 0o600


def test_state_of_another_plan_is_a_lineage_mismatch(backend):
    _saved(backend, plan="other")
    backend.state_path("other").rename(backend.state_path("main"))
    with pytest.raises(LineageMismatch, match="belongs to plan 'other'"):
        backend.load_state("main")


def test_unexpected_lineage_refused(backend):
    state = _saved(backend)
    assert backend.load_state("main", expected_lineage=state.lineage) == state
    with pytest.raises(LineageMismatch, match="expected 1234"):
        backend.load_state("main", expected_lineage="1234")


def test_save_over_another_lineage_refused(backend):
    _saved(backend)
    stranger = next_serial(next_serial(new_state("main")))
    with pytest.raises(LineageMismatch, match="different histories"):
        backend.save_state(stranger)


@pytest.mark.parametrize(
    "damage, expect",
    [
        (lambda raw: raw[: len(raw) // 2], "invalid JSON"),
        (lambda raw: raw.replace(b'"serial": 2', b'"serial": "two"'), "serial"),
        (lambda raw: raw.replace(b'"plan"', b'"plan_name"'), "plan"),
        (lambda raw: b"[]", "JSON object"),
        (lambda raw: b"\xff\xfe", "UTF-8"),
    ],
)
def test_corrupt_state_is_named_with_backup_hint(backend, damage, expect):
    backend.save_state(next_serial(_saved(backend)))
    path = backend.state_path("main")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptStateError) as caught:
        backend.load_state("main")
    message = str(caught.value)
    assert str(path) in message and expect in message
    assert "state.json.backup" in message and "orchestrator state" in message
    assert "pydantic" not in message and "Traceback" not in message
    assert caught.value.backup == str(backend.backup_path("main"))


def test_corrupt_state_refuses_save_and_restores_from_backup(backend):
    first = _saved(backend)
    backend.save_state(next_serial(first))
    backend.state_path("main").write_text('{"version": 1, "lin')
    with pytest.raises(CorruptStateError):
        backend.save_state(next_serial(next_serial(first)))
    restored = backend.restore_backup("main")
    assert restored.serial == 1
    assert backend.load_state("main").serial == 1
    assert any(".damaged-" in p.name for p in backend.state_dir.iterdir())


def test_corrupt_without_backup_suggests_rebuild(backend):
    _saved(backend)
    backend.state_path("main").write_text("")
    with pytest.raises(CorruptStateError, match="state rebuild"):
        backend.load_state("main")
    with pytest.raises(NoBackupError):
        backend.restore_backup("main")


def test_crash_before_rename_leaves_old_state(backend, monkeypatch):
    state = _saved(backend)

    def crash(*args):
        raise OSError("power loss")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        backend.save_state(next_serial(state))
    monkeypatch.undo()
    assert backend.load_state("main").serial == 1
    assert not [p for p in backend.state_dir.iterdir() if p.name.endswith(".tmp")]


def test_bad_plan_name_refused(backend):
    with pytest.raises(ValueError):
        backend.state_path("../escape")


def _stored_with(backend, edit) -> str:
    """Save a valid state with one key, apply `edit` to its JSON, write it back; the path."""
    state = next_serial(new_state("main"))
    state.keys["quant/Bot"] = _key()
    backend.save_state(state)
    path = backend.state_path("main")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return str(path)


def _set(*where, value):
    def edit(data):
        target = data
        for part in where[:-1]:
            target = target[part]
        target[where[-1]] = value

    return edit


@pytest.mark.parametrize(
    "edit, field",
    [
        (_set("serial", value=-5), "serial"),
        (_set("serial", value=10**30), "serial"),
        (_set("serial", value="7"), "serial"),
        (_set("serial", value=2**53), "serial"),
        (_set("serial", value=True), "serial"),
        (_set("version", value=0), "version"),
        (_set("lineage", value="not-a-lineage"), "lineage"),
        (_set("keys", "quant/Bot", "api_key", value="made-up"), "keys.quant/Bot.api_key"),
        (_set("keys", "quant/Bot", "api_key", value="A" * 63 + "!"), "keys.quant/Bot.api_key"),
        (_set("keys", "quant/Bot", "email", value="quant.example.com"), "keys.quant/Bot.email"),
        (_set("keys", "quant/Bot", "generation", value=0), "keys.quant/Bot.generation"),
        (_set("keys", "quant/Bot", "generation", value="2"), "keys.quant/Bot.generation"),
        (
            _set("keys", "quant/Bot", "created_at", value="2024-01-01T00:00:00"),
            "keys.quant/Bot.created_at",
        ),
        (
            _set("subaccounts", value={"quant": {"name": "quant", "email": "nobody"}}),
            "subaccounts.quant.email",
        ),
    ],
)
def test_wrong_but_well_formed_state_is_refused_naming_file_and_field(backend, edit, field):
    path = _stored_with(backend, edit)
    with pytest.raises(CorruptStateError) as caught:
        backend.load_state("main")
    message = str(caught.value)
    assert path in message and field in message, message
    assert "orchestrator state restore" in message or "orchestrator state rebuild" in message
    assert "A" * 60 not in message


def test_state_from_a_newer_orchestrator_says_so(backend):
    _stored_with(backend, _set("version", value=99))
    with pytest.raises(CorruptStateError, match="written by a newer orchestrator"):
        backend.load_state("main")


def test_retired_key_is_checked_too(backend):
    retired = {
        "api_key": "short",
        "api_name": "orc-Bot-g0",
        "generation": 1,
        "retired_at": "2024-01-01T00:00:00+00:00",
        "delete_after": "2024-01-02T00:00:00+00:00",
    }
    _stored_with(backend, _set("keys", "quant/Bot", "previous", value=[retired]))
    with pytest.raises(CorruptStateError, match=r"keys.quant/Bot.previous\[0\].api_key"):
        backend.load_state("main")
