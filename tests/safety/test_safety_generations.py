"""Generations in grace after a rotation survive restores, rebuilds and out-of-band deletes,
and only go once their grace has passed; the bots' keys work after every command."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.safety.safety_kit import (
    bot_holds_current_generation,
    bots_keys_work,
    delete_out_of_band,
    generations,
    holds_material_of,
    keys_without_material,
    later,
    material_of_dead_keys,
    ok,
    plan_lines,
    sink_secrets,
)

pytestmark = pytest.mark.safety
LABEL = "QuantBot-BTC"
ADDRESS = f"quant/{LABEL}"


def apply(project: Path, now: datetime | None = None) -> str:
    return ok(project, "apply", "--auto-approve", now=now)


def rotate(project: Path, now: datetime | None = None) -> str:
    return ok(project, "rotate", "--auto-approve", "--label", LABEL, now=now)


def applied_and_rotated(project: Path) -> None:
    apply(project)
    assert bots_keys_work(project)
    rotate(project)
    assert bots_keys_work(project)
    assert sorted(generations(project, LABEL)) == [1, 2]


def test_restore_then_apply_keeps_the_generation_bots_hold(project: Path):
    applied_and_rotated(project)
    second = generations(project, LABEL)[2]

    ok(project, "state", "restore")
    assert bots_keys_work(project)
    apply(project)

    assert bots_keys_work(project)
    assert second.api_key in {k.api_key for k in generations(project, LABEL).values()}
    output = ok(project, "plan")
    if "No changes" in output:
        assert not bot_holds_current_generation(project), output
        assert not keys_without_material(project), output


def test_two_rotations_in_grace_keep_every_generation_and_its_material(project: Path):
    start = datetime.now(UTC)
    apply(project, now=start)
    rotate(project, now=later(0.1, start))
    assert bots_keys_work(project)
    rotate(project, now=later(0.2, start))
    assert bots_keys_work(project)

    live = generations(project, LABEL)
    assert sorted(live) == [1, 2, 3]
    lacking = [n for n, key in live.items() if not holds_material_of(project, key, "secrets")]
    assert not lacking, f"generations without material in the sink: {lacking}"

    seen = sink_secrets(project)
    apply(project, now=later(2, start))
    assert sorted(generations(project, LABEL)) == [3]
    assert bots_keys_work(project)
    assert not material_of_dead_keys(project, seen)


def test_current_deleted_outside_in_grace_is_replaced_and_the_old_generation_kept(
    project: Path,
):
    start = datetime.now(UTC)
    apply(project, now=start)
    rotate(project, now=later(0.1, start))
    first, second = generations(project, LABEL)[1], generations(project, LABEL)[2]
    delete_out_of_band(project, second)

    apply(project, now=later(0.2, start))
    assert bots_keys_work(project)
    assert not keys_without_material(project)
    live = generations(project, LABEL)
    assert max(live) > 2 and first.api_key == live[1].api_key

    output = ok(project, "plan", now=later(0.3, start))
    assert not [line for line in plan_lines(output, ADDRESS) if "delete" in line], output
    apply(project, now=later(0.3, start))
    assert 1 in generations(project, LABEL)

    apply(project, now=later(2, start))
    assert 1 not in generations(project, LABEL)
    assert bots_keys_work(project)


@pytest.mark.local_files
def test_rebuilt_state_keeps_the_previous_generation_until_grace_ends(project: Path):
    start = datetime.now(UTC)
    apply(project, now=start)
    rotate(project, now=later(0.1, start))
    for path in (project / "state").glob("*.state.json*"):
        path.unlink()

    ok(project, "state", "rebuild", now=later(0.2, start))
    output = ok(project, "plan", now=later(0.2, start))
    assert not [line for line in plan_lines(output, ADDRESS) if "delete" in line], output
    apply(project, now=later(0.2, start))
    assert sorted(generations(project, LABEL)) == [1, 2]
    assert bots_keys_work(project)

    apply(project, now=later(2.5, start))
    assert sorted(generations(project, LABEL)) == [2]
    assert bots_keys_work(project)


def test_restored_state_forgets_a_generation_deleted_since(project: Path):
    start = datetime.now(UTC)
    apply(project, now=start)
    rotate(project, now=later(0.1, start))
    apply(project, now=later(2, start))
    assert sorted(generations(project, LABEL)) == [2]

    ok(project, "state", "restore")
    apply(project, now=later(2.1, start))
    apply(project, now=later(2.2, start))

    shown = ok(project, "state", "show", LABEL)
    assert '"previous": []' in shown, shown
    assert "No changes" in ok(project, "plan", now=later(2.3, start))
    assert bots_keys_work(project)
