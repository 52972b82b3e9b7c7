"""A changed `secrets:` or `key_type` is a change the plan shows: the material moved to the new
sink (or, when the old sink cannot give it, a new key), a new key of the new type.

Pure values: `SinkHolding.moved_from` is what the sink state recorded holds, as refresh reads
it when the plan names another sink.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from orchestrator.domain.model import SinkHolding
from orchestrator.engine.changeset import MoveMaterial, Reconcile, Rotate
from orchestrator.engine.diff import diff, former_sink
from tests.engine.test_diff_evidence import (
    ADDRESS,
    NOW,
    holding,
    key,
    live,
    live_key,
    plan,
    record,
    state,
)

OLD, NEW = "file:secrets/", "dotenv:bots/bot.env"


def moved(new: SinkHolding, old: SinkHolding) -> SinkHolding:
    return replace(new, moved_from=old)


def test_former_sink_is_the_recorded_one_when_the_plan_names_another():
    g1 = live_key(1)
    assert former_sink(key(sink=NEW), state(record(g1))) == OLD
    assert former_sink(key(sink=OLD), state(record(g1))) is None
    assert former_sink(key(sink=NEW), None) is None
    imported = record(g1).model_copy(update={"sink": "external:"})
    assert former_sink(key(sink=NEW), state(imported)) is None


def test_a_changed_sink_moves_every_live_generation_current_last():
    g1, g2 = live_key(1), live_key(2)
    rec = record(g2, (g1, NOW + timedelta(minutes=30)))
    evidence = moved(SinkHolding(), holding(g2, g1))
    cs = diff(plan(key(sink=NEW)), live(g1, g2, material=evidence), state(rec), NOW)
    [move] = cs.actions
    assert isinstance(move, MoveMaterial)
    assert (move.from_sink, move.sink, move.current) == (OLD, NEW, g2.api_key)
    assert move.keep == (g1.api_key, g2.api_key)
    assert "g1, g2 copied and read back, then destroyed in file:secrets/" in move.reason
    assert not cs.findings  # g1 is in the moved material: not "unbacked"


def test_dead_generations_are_not_copied():
    g1, g2 = live_key(1), live_key(2)
    evidence = moved(SinkHolding(), holding(g2, g1))
    cs = diff(plan(key(sink=NEW)), live(g2, material=evidence), state(record(g2)), NOW)
    [move] = cs.actions
    assert isinstance(move, MoveMaterial) and move.keep == (g2.api_key,)


def test_an_interrupted_move_is_finished_from_what_the_sinks_hold():
    g1 = live_key(1)
    # the new sink took the material; the old one was (partly) emptied; state not saved
    for old in (holding(g1), SinkHolding()):
        evidence = moved(holding(g1), old)
        cs = diff(plan(key(sink=NEW)), live(g1, material=evidence), state(record(g1)), NOW)
        [move] = cs.actions
        assert isinstance(move, MoveMaterial) and move.current == g1.api_key


def test_once_state_records_the_new_sink_there_is_nothing_to_do():
    g1 = live_key(1)
    rec = record(g1).model_copy(update={"sink": NEW})
    cs = diff(plan(key(sink=NEW)), live(g1, material=holding(g1)), state(rec), NOW)
    assert not cs.actions and not cs.findings


def test_an_unreadable_old_sink_means_a_new_key_in_the_new_one_and_the_old_key_kept():
    g1 = live_key(1)
    for old in (SinkHolding(unreadable="VaultError: sealed"), SinkHolding()):
        evidence = moved(SinkHolding(), old)
        cs = diff(plan(key(sink=NEW)), live(g1, material=evidence), state(record(g1)), NOW)
        [rotate] = cs.actions
        assert isinstance(rotate, Rotate)
        assert (rotate.api_key, rotate.sink, rotate.generation) == (g1.api_key, NEW, 2)
        assert "a new key is stored in dotenv:bots/bot.env" in rotate.reason
        assert "kept (its material may still be in use) until you delete it" in rotate.reason
        assert not any(isinstance(a, Reconcile) for a in cs.actions)


def test_a_changed_key_type_is_a_rotation_with_grace():
    g1 = live_key(1)
    rec = record(g1)  # ed25519
    cs = diff(plan(key(key_type="hmac")), live(g1, material=holding(g1)), state(rec), NOW)
    [rotate] = cs.actions
    assert isinstance(rotate, Rotate)
    assert (rotate.key_type, rotate.api_key, rotate.grace_s) == ("hmac", g1.api_key, 3600.0)
    assert "key_type ed25519 -> hmac" in rotate.reason and "grace 1h" in rotate.reason


def test_sink_and_key_type_changed_together_move_then_rotate():
    g1 = live_key(1)
    evidence = moved(SinkHolding(), holding(g1))
    cs = diff(
        plan(key(sink=NEW, key_type="hmac")), live(g1, material=evidence), state(record(g1)), NOW
    )
    move, rotate = cs.actions
    assert isinstance(move, MoveMaterial) and isinstance(rotate, Rotate)
    assert rotate.sink == NEW and rotate.key_type == "hmac"


def test_plan_without_refresh_shows_the_move_from_state():
    g1, g2 = live_key(1), live_key(2)
    rec = record(g2, (g1, NOW + timedelta(minutes=30)))
    cs = diff(plan(key(sink=NEW)), live(g1, g2), state(rec), NOW)
    [move] = cs.actions
    assert isinstance(move, MoveMaterial) and move.keep == (g1.api_key, g2.api_key)


def test_a_move_round_trips_through_a_saved_changeset():
    g1 = live_key(1)
    evidence = moved(SinkHolding(), holding(g1))
    cs = diff(plan(key(sink=NEW)), live(g1, material=evidence), state(record(g1)), NOW)
    from orchestrator.engine.changeset import Changeset

    assert Changeset.from_json(cs.to_json()) == cs
    assert cs.counts()["update"] == 1


def test_the_live_fingerprint_sees_the_old_sinks_material():
    g1 = live_key(1)
    before = live(g1, material=moved(SinkHolding(), holding(g1)))
    after = live(g1, material=moved(SinkHolding(), SinkHolding()))
    assert before.fingerprint() != after.fingerprint()
    assert ADDRESS in before.material


def test_rotating_a_key_whose_sink_changed_moves_its_material_first():
    from orchestrator.engine.rotate import rotation_changeset

    g1 = live_key(1)
    evidence = moved(SinkHolding(), holding(g1))
    cs = rotation_changeset(
        plan(key(sink=NEW)),
        live(g1, material=evidence),
        state(record(g1)),
        NOW,
        due=False,
        labels=["bot"],
    )
    move, rotate = cs.actions
    assert isinstance(move, MoveMaterial) and isinstance(rotate, Rotate)
    assert rotate.sink == NEW
