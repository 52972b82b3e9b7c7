"""The state log: a run's state changes appended beside the state file, replayed on load and
folded into the state file when it is written."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from orchestrator.store import CorruptStateError, LocalFileBackend, new_state, next_serial
from orchestrator.store.state import KeyRecord, State, SubaccountRecord
from orchestrator.store.statelog import StateChange, change_line

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def record(label: str, n: int = 1) -> KeyRecord:
    return KeyRecord(
        subaccount="quant",
        email="quant@example.com",
        label=label,
        api_key=f"{label[:1]}{n}".ljust(64, "x"),
        api_name=f"{label}-g{n}",
        generation=n,
        key_type="ed25519",
        created_at=NOW,
        permissions=["read"],
        ips=[],
        sink="file:secrets/",
    )


def with_key(state: State, label: str, n: int = 1) -> State:
    keys = {**state.keys, f"quant/{label}": record(label, n)}
    return state.model_copy(update={"keys": keys, "serial": state.serial + 1})


def without_key(state: State, label: str) -> State:
    keys = {a: r for a, r in state.keys.items() if a != f"quant/{label}"}
    return state.model_copy(update={"keys": keys, "serial": state.serial + 1})


@pytest.fixture
def backend(tmp_path) -> LocalFileBackend:
    return LocalFileBackend(tmp_path)


@pytest.fixture
def saved(backend) -> State:
    return backend.save_state(next_serial(new_state("main")))


def log_changes(backend: LocalFileBackend, *steps: tuple[State, State]) -> None:
    writer = backend.state_writer("main")
    writer.write_group([StateChange(after, change_line(before, after)) for before, after in steps])


def test_a_change_line_holds_only_the_records_that_changed(saved):
    one = with_key(saved, "A")
    two = with_key(one, "B")
    line = json.loads(change_line(one, two))
    assert line == {
        "serial": two.serial,
        "lineage": saved.lineage,
        "keys": {"quant/B": record("B").model_dump(mode="json")},
    }
    assert json.loads(change_line(two, without_key(two, "A")))["keys"] == {"quant/A": None}


def test_load_replays_the_log_on_top_of_the_state_file(backend, saved):
    one = with_key(saved, "A")
    two = with_key(one, "B")
    sub = SubaccountRecord(name="copy", email="copy_virtual@example.com", virtual=True)
    three = two.model_copy(
        update={"subaccounts": {"copy": sub}, "serial": 4, "plan_file": "plans/main.yaml"}
    )
    four = without_key(three, "A")
    log_changes(backend, (saved, one), (one, two), (two, three), (three, four))
    on_disk = json.loads(backend.state_path("main").read_text())
    assert on_disk["serial"] == saved.serial and on_disk["keys"] == {}
    loaded = backend.load_state("main")
    assert loaded is not None
    assert loaded.serial == four.serial == 5
    assert loaded.keys == four.keys and loaded.subaccounts == {"copy": sub}
    assert loaded.plan_file == "plans/main.yaml"


def test_a_torn_last_line_is_ignored_then_cut_off(backend, saved):
    one = with_key(saved, "A")
    two = with_key(one, "B")
    log_changes(backend, (saved, one))
    path = backend.state_log_path("main")
    with open(path, "ab") as handle:
        handle.write(change_line(one, two)[:40])  # a crash in the middle of the write
    assert backend.load_state("main").keys.keys() == {"quant/A"}
    log_changes(backend, (one, two))
    assert backend.load_state("main").keys.keys() == {"quant/A", "quant/B"}
    assert all(json.loads(line) for line in path.read_bytes().splitlines())


def test_a_damaged_line_before_the_last_makes_the_state_unusable(backend, saved):
    one = with_key(saved, "A")
    two = with_key(one, "B")
    log_changes(backend, (saved, one))
    with open(backend.state_log_path("main"), "ab") as handle:
        handle.write(b"garbage\n")
    log_changes(backend, (one, two))
    with pytest.raises(CorruptStateError, match="line 2 is not a state change"):
        backend.load_state("main")


def test_a_gap_in_the_serials_makes_the_state_unusable(backend, saved):
    one = with_key(saved, "A")
    two = with_key(one, "B")
    log_changes(backend, (one, two))
    with pytest.raises(CorruptStateError, match="serial 3 where 2 was expected"):
        backend.load_state("main")


def test_lines_the_state_file_already_covers_are_skipped(backend, saved):
    """A crash after the state file was written but before the log was removed."""
    one = with_key(saved, "A")
    log_changes(backend, (saved, one))
    kept = backend.state_log_path("main").read_bytes()
    backend.save_state(one)
    assert not backend.state_log_path("main").exists()
    backend.state_log_path("main").write_bytes(kept)
    loaded = backend.load_state("main")
    assert loaded.serial == one.serial and loaded.keys == one.keys


def test_compact_writes_the_replayed_state_and_removes_the_log(backend, saved):
    one = with_key(saved, "A")
    log_changes(backend, (saved, one))
    compacted = backend.compact("main")
    assert compacted.serial == one.serial  # a plan made before compaction still matches
    assert not backend.state_log_path("main").exists()
    on_disk = json.loads(backend.state_path("main").read_text())
    assert on_disk["serial"] == one.serial and list(on_disk["keys"]) == ["quant/A"]
    assert json.loads(backend.backup_path("main").read_text())["serial"] == saved.serial
    assert backend.compact("main").serial == one.serial  # nothing to fold: nothing written


def test_the_first_change_of_a_new_state_writes_the_state_file(backend):
    fresh = new_state("main")
    one = with_key(fresh, "A")
    log_changes(backend, (fresh, one))
    assert json.loads(backend.state_path("main").read_text())["serial"] == 1
    assert not backend.state_log_path("main").exists()


def test_the_log_is_compacted_once_it_outgrows_its_bound(backend, saved, monkeypatch):
    monkeypatch.setattr("orchestrator.store.statelog.COMPACT_AFTER", 3)
    states = [saved]
    for n in range(1, 6):
        states.append(with_key(states[-1], "A", n))  # the state does not grow
    writer = backend.state_writer("main")
    for before, after in zip(states, states[1:], strict=False):
        writer.write_group([StateChange(after, change_line(before, after))])
    assert json.loads(backend.state_path("main").read_text())["serial"] == states[4].serial
    assert len(backend.state_log_path("main").read_bytes().splitlines()) == 1
    assert backend.load_state("main").keys == states[5].keys


def test_restoring_the_backup_drops_the_log(backend, saved):
    one = with_key(saved, "A")
    backend.save_state(one)
    two = with_key(one, "B")
    log_changes(backend, (one, two))
    restored = backend.restore_backup("main")
    assert restored.serial == saved.serial
    assert not backend.state_log_path("main").exists()
    assert backend.load_state("main").keys == {}


def test_the_log_is_private(backend, saved):
    log_changes(backend, (saved, with_key(saved, "A")))
    assert oct(os.stat(backend.state_log_path("main")).st_mode & 0o777) == "0o600"
