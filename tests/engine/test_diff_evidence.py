"""The diff decides a label's generations from the live account, the sink and state together.

Pure values only: `Live.material` is what the sink holds (by api key), as refresh reads it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from orchestrator.domain.model import (
    Desired,
    DesiredKey,
    DesiredSubaccount,
    Live,
    LiveKey,
    SinkHolding,
)
from orchestrator.domain.naming import api_name
from orchestrator.engine.changeset import (
    CreateKey,
    DeleteKey,
    Reconcile,
    Rename,
)
from orchestrator.engine.diff import diff
from orchestrator.exchange.models import Permission, SubAccount
from orchestrator.store.state import KeyRecord, RetiredKey, State

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EMAIL = "quant@example.com"
ADDRESS = "quant/bot"
PROJECT = "proj"


def key(label="bot", **kw) -> DesiredKey:
    return DesiredKey(
        subaccount="quant",
        label=label,
        permissions=frozenset({Permission.SPOT}),
        ips=("203.0.113.10",),
        owner=PROJECT,
        **kw,
    )


def plan(*keys, prune=False) -> Desired:
    sub = DesiredSubaccount(name="quant", email=EMAIL, prune=prune, keys=tuple(keys))
    return Desired("p", (sub,), project=PROJECT)


def live_key(gen: int, label="bot", owner=PROJECT) -> LiveKey:
    return LiveKey(
        email=EMAIL,
        api_name=api_name(label, gen, owner),
        api_key=f"K{gen}{label}",
        permissions=frozenset({Permission.SPOT}),
        restricted=True,
        ips=("203.0.113.10",),
        created_ms=int((NOW - timedelta(days=1)).timestamp() * 1000),
    )


def holding(current: LiveKey | str | None, *held: LiveKey, former=False) -> SinkHolding:
    keys = [current, *held] if current is not None else list(held)
    generations = {}
    for k in keys:
        if isinstance(k, LiveKey):
            generations[k.api_key] = int(k.api_name.rsplit("-g", 1)[1])
    current_key = current.api_key if isinstance(current, LiveKey) else current
    return SinkHolding(current_key, generations, under_former_label=former)


def live(*keys: LiveKey, material: SinkHolding | None = None, address=ADDRESS) -> Live:
    return Live(
        subaccounts=(SubAccount(email=EMAIL),),
        keys={EMAIL: keys},
        material={address: material} if material is not None else {},
    )


def record(k: LiveKey, *previous: tuple[LiveKey, datetime], label="bot") -> KeyRecord:
    return KeyRecord(
        subaccount="quant",
        email=EMAIL,
        label=label,
        api_key=k.api_key,
        api_name=k.api_name,
        generation=int(k.api_name.rsplit("-g", 1)[1]),
        key_type="ed25519",
        created_at=NOW - timedelta(days=1),
        permissions=["spot"],
        ips=["203.0.113.10"],
        sink="file:secrets/",
        previous=[
            RetiredKey(
                api_key=p.api_key,
                api_name=p.api_name,
                generation=int(p.api_name.rsplit("-g", 1)[1]),
                retired_at=after - timedelta(hours=1),
                delete_after=after,
            )
            for p, after in previous
        ],
    )


def state(*records: KeyRecord) -> State:
    return State(lineage="L", serial=3, plan="p", keys={f"quant/{r.label}": r for r in records})


def test_restored_state_keeps_the_generation_bots_read_and_gives_the_other_grace():
    g1, g2 = live_key(1), live_key(2)
    cs = diff(plan(key()), live(g1, g2, material=holding(g2, g1)), state(record(g1)), NOW)
    assert not any(isinstance(a, DeleteKey) for a in cs.actions)
    (reconcile,) = cs.actions
    assert isinstance(reconcile, Reconcile)
    assert reconcile.adopt_api_key == g2.api_key
    assert reconcile.retire == ((g1.api_key, g1.api_name),)
    assert cs.has_changes  # never "No changes" while state disagrees with the sink


def test_every_generation_in_grace_keeps_living_until_its_own_deadline():
    g1, g2, g3 = live_key(1), live_key(2), live_key(3)
    later = NOW + timedelta(minutes=30)
    recorded = record(g3, (g1, later), (g2, later))
    both = live(g1, g2, g3, material=holding(g3, g1, g2))
    assert diff(plan(key()), both, state(recorded), NOW).actions == ()
    due = diff(plan(key()), both, state(recorded), later + timedelta(seconds=1))
    deleted = {a.api_key for a in due.actions if isinstance(a, DeleteKey)}
    assert deleted == {g1.api_key, g2.api_key}


def test_a_current_key_deleted_out_of_band_is_replaced_and_grace_survives():
    g1, g2 = live_key(1), live_key(2)
    later = NOW + timedelta(minutes=30)
    cs = diff(plan(key()), live(g1, material=holding(g2, g1)), state(record(g2, (g1, later))), NOW)
    created = [a for a in cs.actions if isinstance(a, CreateKey)]
    assert [a.generation for a in created] == [3]
    assert not any(isinstance(a, DeleteKey) for a in cs.actions)
    (reconcile,) = [a for a in cs.actions if isinstance(a, Reconcile)]
    assert reconcile.destroy == (g2.api_key,)  # the dead key's material goes


def test_a_live_generation_without_material_is_kept_and_reported():
    g1, g2 = live_key(1), live_key(2)
    cs = diff(plan(key()), live(g1, g2, material=holding(g2)), state(record(g2)), NOW)
    assert cs.actions == ()
    assert [f.kind for f in cs.findings] == ["unbacked"]


def test_without_state_the_key_bots_read_is_adopted_and_nothing_is_deleted():
    g1, g2 = live_key(1), live_key(2)
    cs = diff(plan(key()), live(g1, g2, material=holding(g2, g1)), None, NOW)
    (reconcile,) = cs.actions
    assert isinstance(reconcile, Reconcile) and reconcile.adopt_api_key == g2.api_key


def test_another_projects_keys_are_never_pruned_and_block_the_plan():
    mine, theirs = live_key(1), live_key(1, label="Other", owner="other")
    cs = diff(plan(key(), prune=True), live(mine, theirs, material=holding(mine)), None, NOW)
    assert not any(isinstance(a, DeleteKey) for a in cs.actions)
    assert [f.kind for f in cs.blocking] == ["shared_subaccount"]
    assert "other" in cs.blocking[0].message


def test_a_declared_rename_keeps_the_key():
    old = live_key(1, label="Old")
    renamed = replace(key("New"), former_label="Old")
    desired = plan(renamed, prune=True)
    observed = live(old, material=holding(old, former=True), address="quant/New")
    cs = diff(desired, observed, state(record(old, label="Old")), NOW)
    assert [type(a) for a in cs.actions] == [Rename]
    assert "renamed from Old" in cs.actions[0].reason


def test_a_sink_that_cannot_be_read_deletes_nothing_of_its_label():
    g1, g2 = live_key(1), live_key(2)
    ended = NOW - timedelta(minutes=1)
    unreadable = SinkHolding(unreadable="VaultError: sealed")
    cs = diff(plan(key()), live(g1, g2, material=unreadable), state(record(g2, (g1, ended))), NOW)
    assert not any(isinstance(a, DeleteKey) for a in cs.actions)
    assert [f.kind for f in cs.findings] == ["sink_unreadable"]
    without_evidence = diff(plan(key()), live(g1, g2), state(record(g2, (g1, ended))), NOW)
    assert any(isinstance(a, DeleteKey) for a in without_evidence.actions)
