"""Kill -9 at every crash point, every time it is reached, then show the next applies converge.

For each point in crashpoints.POINTS and each occurrence #n a scenario's command reaches
(counted by a clean run with ORCHESTRATOR_CRASH_TRACE), the command runs as a subprocess with
ORCHESTRATOR_CRASH_AT=<point>#<n>, must die by SIGKILL, and then a plain
`apply --auto-approve` is re-run (at most three times) until it exits 0. The invariants in
reliability_kit must then hold, and so must the safety kit's view from outside the tool: the
bots' keys work, no dead key's material is left, no label has more live keys than its
current one and the generations still in grace.

The scenarios: the main apply (create, update, rotate, prune, virtual sub-account); the apply
two hours on that deletes a key whose grace is over; a `rotate` of a key whose previous
generation is still in grace; the main apply after a rotation and a `state restore` that
forgot it; and, after the main apply, an apply of changed `secrets:` and `key_type` (material
moved to another sink, keys of another type made). The first four run on the local files and
on PostgreSQL. The full matrix is slow (`make chaos`); a few representative cases run always
(one on PostgreSQL).
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from reliability_kit import (
    CONVERGE_COMMAND,
    PLAN_PATH,
    build_scenario,
    check_from_outside,
    check_invariants,
    converge,
    copy_project,
    crash_trace,
    read_state,
    replace_backup,
    run,
    serial,
)

from orchestrator.engine.crashpoints import POINTS
from tests.safety.safety_kit import generations, ok, sink_secrets

MAX_OCCURRENCES = 6
APPLY = ("apply", "--auto-approve")
FAST_CASES = {("after_material", 1), ("after_state", 5)}
GRACE_ROTATION_FAST_CASES = {("after_state", 1)}
RESTORE_FAST_CASES = {("after_create", 2)}
#: the cases of the main scenario that also run always on PostgreSQL
POSTGRES_FAST_CASES = {("after_state", 5)}
BACKENDS = ("local", "postgres")

#: rotated by plan v2 with a 1h grace: once the main scenario is applied, g1 is in grace.
ROTATED_IN_GRACE = "Koinly-Tax"
ROTATE_IN_GRACE = ("rotate", "--auto-approve", "--label", ROTATED_IN_GRACE)
#: rotated (grace 1h) before the main apply, then forgotten by `state restore`.
ROTATED_THEN_RESTORED = "Updater"

#: the sink-change scenario: Tracker's material moves to a dotenv file; NewEd's moves too
#: and it becomes an HMAC key (g1 in its 1h grace); QuantBot-BTC becomes HMAC (grace 0s).
SINK_CHANGES = (
    (
        "      - label: Tracker\n        profile: read-only\n        ips: []\n",
        "        secrets: dotenv:bots/tracker.env\n",
    ),
    (
        "      - label: NewEd\n        profile: read-only\n        ips: []\n",
        "        secrets: dotenv:bots/newed.env\n        key_type: hmac\n",
    ),
    (
        "      - label: QuantBot-BTC\n        profile: quant\n        grace: 0s\n",
        "        key_type: hmac\n",
    ),
)
MOVED_OUT_OF = ("secrets/copy/Tracker", "secrets/copy/NewEd")
MOVE_POINTS = ("after_material_copied", "after_old_material_destroyed")
SINK_CHANGE_FAST_CASES = {("after_material_copied", 1), ("after_old_material_destroyed", 2)}

#: generations (by label) that may still be live, in grace, besides the current one.
MAIN_IN_GRACE = {ROTATED_IN_GRACE: 1}
AFTER_GRACE_IN_GRACE: dict[str, int] = {}
GRACE_ROTATION_IN_GRACE = {ROTATED_IN_GRACE: 2}
RESTORE_IN_GRACE = {ROTATED_IN_GRACE: 1, ROTATED_THEN_RESTORED: 1}
SINK_CHANGE_IN_GRACE = {ROTATED_IN_GRACE: 1, "NewEd": 1}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, backend) -> tuple[Path, dict]:
    """The main scenario (create, update, rotate, prune, virtual sub-account) and how often
    its apply reaches each crash point."""
    root = tmp_path_factory.mktemp(f"crash-{backend}")
    base = build_scenario(root / "base", backend)
    counts = crash_trace(copy_project(base, root / "traced"), root / "trace.txt")
    return base, counts


def later(hours: int = 2) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


@pytest.fixture(scope="module")
def applied_scenario(scenario, tmp_path_factory) -> Path:
    """The main scenario, applied: Koinly-Tax's g1 is in its 1h grace, g2 is current."""
    base, _ = scenario
    applied = copy_project(base, tmp_path_factory.mktemp("applied") / "base")
    ok(applied, *APPLY)
    return applied


@pytest.fixture(scope="module")
def grace_scenario(applied_scenario, tmp_path_factory) -> tuple[Path, dict]:
    """After the main apply: two hours on, the 1h grace of Koinly-Tax's old key is over, so
    the apply deletes a retired key and drops its previous material."""
    root = tmp_path_factory.mktemp("grace")
    counts = crash_trace(
        copy_project(applied_scenario, root / "traced"),
        root / "trace.txt",
        ORCHESTRATOR_NOW=later(),
    )
    assert counts["before_delete"] == 1
    return applied_scenario, counts


@pytest.fixture(scope="module")
def grace_rotation_scenario(applied_scenario, tmp_path_factory) -> tuple[Path, dict]:
    """After the main apply, Koinly-Tax (g1 in grace, g2 current) is rotated again: g3 is
    made and g1 and g2 both stay live through their grace. How often that rotate reaches
    each crash point."""
    root = tmp_path_factory.mktemp("grace-rotation")
    traced = copy_project(applied_scenario, root / "traced")
    counts = crash_trace(traced, root / "trace.txt", ROTATE_IN_GRACE)
    assert sorted(generations(traced, ROTATED_IN_GRACE)) == [1, 2, 3]
    return applied_scenario, counts


@pytest.fixture(scope="module")
def restore_scenario(scenario, tmp_path_factory) -> tuple[Path, dict]:
    """The main scenario after Updater was rotated (grace 1h) and `state restore` put back
    the state from before that rotation, which restore reconciles at once (Updater's g2 is
    what bots read; g1 in grace from then); the apply then has plan v2's changes. How often
    that apply reaches each crash point.

    A run ends with a save that anchors its audit lines, so the backup a rotate leaves
    already records the rotation; the state from before the rotate is put in the backup's
    place first, as an operator restoring an older backup would."""
    base, _ = scenario
    root = tmp_path_factory.mktemp("restore")
    restored = copy_project(base, root / "base")
    before_rotation = read_state(restored)
    ok(restored, "rotate", "--auto-approve", "--label", ROTATED_THEN_RESTORED)
    replace_backup(restored, before_rotation)
    ok(restored, "state", "restore")
    assert read_state(restored)["keys"][f"quant/{ROTATED_THEN_RESTORED}"]["generation"] == 2
    assert sorted(generations(restored, ROTATED_THEN_RESTORED)) == [1, 2]
    counts = crash_trace(copy_project(restored, root / "traced"), root / "trace.txt")
    return restored, counts


@pytest.fixture(scope="module")
def sink_change_scenario(applied_scenario, tmp_path_factory) -> tuple[Path, dict]:
    """After the main apply, the plan changes two keys' `secrets:` and two keys' `key_type`
    (one key both); how often the apply reaches each crash point."""
    root = tmp_path_factory.mktemp("sink-change")
    base = copy_project(applied_scenario, root / "base")
    plan = base / PLAN_PATH
    text = plan.read_text()
    for anchor, added in SINK_CHANGES:
        assert text.count(anchor) == 1, anchor
        text = text.replace(anchor, anchor + added)
    plan.write_text(text)
    counts = crash_trace(copy_project(base, root / "traced"), root / "trace.txt")
    return base, counts


def crash_then_converge(
    base: Path,
    dest: Path,
    point: str,
    nth: int,
    chaos,
    *,
    in_grace: Mapping[str, int],
    command: Sequence[str] = APPLY,
    figure: str | None = None,
    **env: str,
) -> int:
    """Kill `command` at the n-th `point`, converge with a plain apply, check everything;
    the number of applies it took. `figure` counts this scenario's cases in the report."""
    assert "--break-stale-lock" not in CONVERGE_COMMAND
    project = copy_project(base, dest)
    before = serial(project)
    seen_secrets = sink_secrets(project)
    chaos.add("crash_points_tried")
    if figure:
        chaos.add(figure)
    crashed = run(project, *command, ORCHESTRATOR_CRASH_AT=f"{point}#{nth}", **env)
    crashed_output = crashed.stdout + crashed.stderr
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed_output)
    seen_secrets |= sink_secrets(project)
    done = converge(project, **env)
    try:
        check_invariants(project, serial_before=before, chaos=chaos)
        check_from_outside(project, in_grace=in_grace, seen_secrets=seen_secrets, chaos=chaos)
    except AssertionError as failed:
        outputs = "\n---\n".join(
            [f"{' '.join(command)} (killed):\n{crashed_output}", *done.outputs]
        )
        raise AssertionError(f"{failed}\n\ncommand outputs:\n{outputs}") from failed
    chaos.add("crash_points_converged")
    if figure:
        chaos.add(f"{figure}_converged")
    return done.runs


def cases(fast_cases: set[tuple[str, int]], postgres_fast: set[tuple[str, int]] = frozenset()):
    """(backend, point, nth) for every backend and case: the fast ones first, the rest slow."""
    return list(_cases(fast_cases, postgres_fast))


def _cases(fast_cases: set[tuple[str, int]], postgres_fast: set[tuple[str, int]]):
    every = [
        (backend, point, nth)
        for backend in BACKENDS
        for point in POINTS
        for nth in range(1, MAX_OCCURRENCES + 1)
    ]
    fast = {
        (b, p, n) for b, p, n in every if (p, n) in (fast_cases if b == "local" else postgres_fast)
    }
    for case in sorted(every, key=lambda case: case not in fast):
        backend, point, nth = case
        marks = [] if case in fast else [pytest.mark.slow]
        if backend == "postgres":
            marks.append(pytest.mark.postgres)
        name = f"{point}#{nth}" if backend == "local" else f"postgres-{point}#{nth}"
        yield pytest.param(backend, point, nth, id=name, marks=marks)


def skip_unless_reached(counts, point: str, nth: int, what: str) -> None:
    if counts[point] < nth:
        pytest.skip(f"{point} is reached {counts[point]} time(s) by {what}")


@pytest.mark.parametrize(
    ("backend", "point", "nth"), cases(FAST_CASES, POSTGRES_FAST_CASES), indirect=["backend"]
)
def test_crash_at_every_point_converges(scenario, tmp_path, point, nth, chaos):
    base, counts = scenario
    skip_unless_reached(counts, point, nth, "this apply")
    crash_then_converge(base, tmp_path / "p", point, nth, chaos, in_grace=MAIN_IN_GRACE)


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["local", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
@pytest.mark.parametrize("point", ["before_delete", "after_delete"])
def test_crash_deleting_a_retired_key_after_grace_converges(grace_scenario, tmp_path, point, chaos):
    base, _ = grace_scenario
    crash_then_converge(
        base,
        tmp_path / "p",
        point,
        1,
        chaos,
        in_grace=AFTER_GRACE_IN_GRACE,
        ORCHESTRATOR_NOW=later(),
    )


@pytest.mark.parametrize(
    ("backend", "point", "nth"), cases(GRACE_ROTATION_FAST_CASES), indirect=["backend"]
)
def test_crash_rotating_a_key_in_grace_converges(
    grace_rotation_scenario, tmp_path, point, nth, chaos
):
    base, counts = grace_rotation_scenario
    skip_unless_reached(counts, point, nth, "this rotate")
    crash_then_converge(
        base,
        tmp_path / "p",
        point,
        nth,
        chaos,
        in_grace=GRACE_ROTATION_IN_GRACE,
        command=ROTATE_IN_GRACE,
        figure="grace_rotation_crash_points",
    )


@pytest.mark.parametrize(
    ("backend", "point", "nth"), cases(RESTORE_FAST_CASES), indirect=["backend"]
)
def test_crash_applying_after_a_state_restore_converges(
    restore_scenario, tmp_path, point, nth, chaos
):
    base, counts = restore_scenario
    skip_unless_reached(counts, point, nth, "this apply")
    crash_then_converge(
        base,
        tmp_path / "p",
        point,
        nth,
        chaos,
        in_grace=RESTORE_IN_GRACE,
        figure="restore_crash_points",
    )


@pytest.mark.parametrize(
    ("backend", "point", "nth"), cases(SINK_CHANGE_FAST_CASES), indirect=["backend"]
)
def test_crash_applying_changed_sinks_and_key_types_converges(
    sink_change_scenario, tmp_path, point, nth, chaos
):
    base, counts = sink_change_scenario
    skip_unless_reached(counts, point, nth, "this apply")
    crash_then_converge(
        base,
        tmp_path / "p",
        point,
        nth,
        chaos,
        in_grace=SINK_CHANGE_IN_GRACE,
        figure="sink_change_crash_points",
    )
    project = tmp_path / "p"
    left = [str(p) for moved in MOVED_OUT_OF for p in project.glob(moved + "*")]
    assert not left, f"the old sink still holds {left}"


def test_the_scenario_reaches_every_key_crash_point(scenario):
    _, counts = scenario
    skipped = ("rollback_begun", "after_rollback_state", *MOVE_POINTS)
    unreached = [p for p in POINTS if p not in skipped and not counts[p]]
    assert not unreached


def test_a_sink_change_reaches_every_step_of_a_move(sink_change_scenario):
    _, counts = sink_change_scenario
    assert counts["after_material_copied"] == 2, counts
    assert counts["after_old_material_destroyed"] == 2, counts
    assert counts["after_promote"] == 2 and counts["after_delete"] == 1, counts


def test_a_rotation_in_grace_reaches_every_step_of_making_a_key(grace_rotation_scenario):
    _, counts = grace_rotation_scenario
    steps = ("before_create", "after_create", "after_material", "after_state", "after_promote")
    assert all(counts[step] for step in steps), counts
