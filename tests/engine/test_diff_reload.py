"""The diff with `reload:`/`check:` steps: an older generation is deleted only once state
records that the steps succeeded for the label's current key, both with sink evidence and
without; anything else (no record, a failure, a record for another key) plans the steps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.model import Live, SinkHolding
from orchestrator.engine.changeset import Changeset, Reload
from orchestrator.engine.diff import diff
from orchestrator.store.state import RetiredKey, SwitchRecord
from tests.engine.test_diff import NOW, key, kinds, live, live_key, plan, record, state

RELOAD = ("systemctl", "reload", "bot.service")
OLD, NEW = live_key(gen=1, api="OLD"), live_key(gen=2, api="NEW")


def retired(after=NOW - timedelta(minutes=1)) -> RetiredKey:
    return RetiredKey(
        api_key="OLD", api_name=OLD.api_name, generation=1, retired_at=NOW, delete_after=after
    )


def switched(api_key="NEW", ok=True) -> SwitchRecord:
    return SwitchRecord(api_key=api_key, generation=2, ok=ok, at=NOW, reason="" if ok else "x")


def with_evidence(base: Live) -> Live:
    holding = SinkHolding(current="NEW", generations={"NEW": 2, "OLD": 1})
    return Live(base.subaccounts, base.keys, {"quant/bot": holding})


def changes(evidence: bool, switch: SwitchRecord | None, **settings) -> Changeset:
    prior = state(record(NEW, gen=2, previous=[retired()]).model_copy(update={"switched": switch}))
    seen = live(OLD, NEW)
    return diff(plan(key(**settings)), with_evidence(seen) if evidence else seen, prior, NOW)


@pytest.mark.parametrize("evidence", [True, False])
def test_without_steps_the_grace_ended_generation_is_deleted(evidence):
    assert kinds(changes(evidence, None)) == ["delete"]


@pytest.mark.parametrize("evidence", [True, False])
def test_a_recorded_success_for_the_current_key_lets_the_old_one_go(evidence):
    assert kinds(changes(evidence, switched(), reload=RELOAD)) == ["delete"]


@pytest.mark.parametrize("evidence", [True, False])
@pytest.mark.parametrize(
    "switch", [None, switched(ok=False), switched(api_key="OLD")], ids=["none", "failed", "other"]
)
def test_otherwise_the_steps_run_first_and_nothing_is_deleted(evidence, switch):
    found = changes(evidence, switch, check=("true",))
    assert kinds(found) == ["reload"]
    (reload,) = found.actions
    assert isinstance(reload, Reload)
    assert (reload.api_key, reload.release) == ("NEW", (("OLD", OLD.api_name),))
    assert reload.check == ("true",) and reload.reload == ()


def test_a_failure_is_a_high_finding_with_the_fix():
    found = changes(True, switched(ok=False), reload=RELOAD)
    (finding,) = [f for f in found.findings if f.kind == "reload_failed"]
    assert finding.severity.value == "high"
    assert "rotate --reload-only --label bot" in finding.fix


def test_a_label_with_no_older_generation_needs_no_steps():
    prior = state(record(NEW, gen=2))
    assert not diff(plan(key(reload=RELOAD)), live(NEW), prior, NOW).has_changes


def test_a_generation_still_in_grace_waits_for_the_steps_too():
    prior = state(record(NEW, gen=2, previous=[retired(after=NOW + timedelta(hours=1))]))
    found = diff(plan(key(reload=RELOAD)), with_evidence(live(OLD, NEW)), prior, NOW)
    assert kinds(found) == ["reload"] and found.actions[0].release == ()


def test_a_rotation_carries_the_steps_and_replaces_a_pending_reload():
    old = live_key(gen=2, api="NEW", created=NOW - timedelta(days=40))
    prior = state(record(old, gen=2, previous=[retired()], created=NOW - timedelta(days=40)))
    desired = plan(key(reload=RELOAD, rotate_after=timedelta(days=30)))
    found = diff(desired, with_evidence(live(OLD, old)), prior, NOW)
    assert kinds(found) == ["rotate"]
    assert found.actions[0].reload == RELOAD


def test_reload_actions_round_trip_through_a_saved_changeset():
    found = changes(True, None, reload=RELOAD, check=("true",))
    assert Changeset.from_json(found.to_json()).actions == found.actions
