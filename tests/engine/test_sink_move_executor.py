"""The copy step of a sink move, on real file and dotenv sinks: every generation copied and
read back, the key bots should read in the new sink's bot-facing slot, the old sink emptied."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.engine.changeset import MoveMaterial
from orchestrator.engine.ledger import ActionFailed
from orchestrator.engine.reconcile import Reconciliation
from orchestrator.sinks import KeyMaterial, open_sink

ADDRESS = "quant/bot"
OLD, NEW = "file:secrets/", "dotenv:bots/bot.env"


def material(generation: int) -> KeyMaterial:
    return KeyMaterial(
        subaccount="quant",
        label="bot",
        api_key=f"K{generation}" * 8,
        key_type="hmac",
        secret=f"S{generation}" * 32,
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
        generation=generation,
    )


def store(project: Path, spec: str, *generations: int) -> None:
    """Each generation promoted in turn: the last is bot-facing, the others held."""
    sink = open_sink(spec, project)
    for generation in generations:
        sink.write_pending(material(generation))
        sink.promote(ADDRESS)


def move(project: Path, keep: tuple[int, ...], current: int) -> None:
    sinks: dict = {}

    def opener(spec: str):
        return sinks.setdefault(spec, open_sink(spec, project))

    action = MoveMaterial(
        subaccount="quant",
        label="bot",
        from_sink=OLD,
        sink=NEW,
        current=material(current).api_key or "",
        keep=tuple(material(g).api_key or "" for g in keep),
    )
    Reconciliation(None, opener, lambda: datetime.now(UTC))._copy_then_empty(action)  # type: ignore[arg-type]


def held(project: Path, spec: str) -> list[int]:
    return [m.generation for m in open_sink(spec, project).read_held(ADDRESS)]


def test_every_generation_is_copied_the_current_one_bot_facing(tmp_path: Path):
    store(tmp_path, OLD, 1, 2, 3)
    move(tmp_path, keep=(1, 2, 3), current=3)
    new = open_sink(NEW, tmp_path)
    assert new.read_current(ADDRESS) == material(3)
    assert held(tmp_path, NEW) == [1, 2]
    assert not list((tmp_path / "secrets").rglob("*.json"))


def test_a_dead_generation_is_destroyed_not_copied(tmp_path: Path):
    store(tmp_path, OLD, 1, 2)
    move(tmp_path, keep=(2,), current=2)
    assert held(tmp_path, NEW) == []
    assert not list((tmp_path / "secrets").rglob("*.json"))


def test_a_move_finished_by_a_rerun_leaves_the_current_key_bot_facing(tmp_path: Path):
    """An interrupted move: the new sink already hands out g2; the old one still holds g1
    (live, in grace). Copying g1 must not leave it in the bot-facing slot."""
    store(tmp_path, NEW, 2)
    store(tmp_path, OLD, 1)
    move(tmp_path, keep=(1,), current=2)
    assert open_sink(NEW, tmp_path).read_current(ADDRESS) == material(2)
    assert held(tmp_path, NEW) == [1]
    assert not list((tmp_path / "secrets").rglob("*.json"))


def test_nothing_is_destroyed_when_the_copy_cannot_be_checked(tmp_path: Path):
    store(tmp_path, OLD, 1)
    with pytest.raises(ActionFailed):
        move(tmp_path, keep=(1,), current=2)  # the planned current key is nowhere
    assert open_sink(OLD, tmp_path).read_current(ADDRESS) == material(1)
