"""Kill -9 at every crash point, every time it is reached, then show the next applies converge.

For each point in crashpoints.POINTS and each occurrence #n the scenario's apply reaches
(counted by a clean run with ORCHESTRATOR_CRASH_TRACE), the apply runs as a subprocess with
ORCHESTRATOR_CRASH_AT=<point>#<n>, must die by SIGKILL, and then `apply --auto-approve`
is re-run (at most three times) until it exits 0; the invariants in reliability_kit must
then hold. The full matrix is slow (`make chaos`); a few representative points run always.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from reliability_kit import (
    build_scenario,
    check_invariants,
    converge,
    copy_project,
    crash_trace,
    run,
    serial,
)

from orchestrator.engine.crashpoints import POINTS

MAX_OCCURRENCES = 6
FAST_CASES = {("after_material", 1), ("after_state", 5)}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> tuple[Path, dict]:
    """The main scenario (create, update, rotate, prune, virtual sub-account) and how often
    its apply reaches each crash point."""
    root = tmp_path_factory.mktemp("crash")
    base = build_scenario(root / "base")
    counts = crash_trace(copy_project(base, root / "traced"), root / "trace.txt")
    return base, counts


def later(hours: int = 2) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


@pytest.fixture(scope="module")
def grace_scenario(scenario, tmp_path_factory) -> tuple[Path, dict]:
    """After the main apply: two hours on, the 1h grace of Koinly-Tax's old key is over, so
    the apply deletes a retired key and drops its previous material."""
    base, _ = scenario
    root = tmp_path_factory.mktemp("grace")
    applied = copy_project(base, root / "base")
    assert run(applied, "apply", "--auto-approve").returncode == 0
    counts = crash_trace(
        copy_project(applied, root / "traced"), root / "trace.txt", ORCHESTRATOR_NOW=later()
    )
    assert counts["before_delete"] == 1
    return applied, counts


def crash_then_converge(base: Path, dest: Path, point: str, nth: int, chaos, **env: str) -> int:
    project = copy_project(base, dest)
    before = serial(project)
    chaos.add("crash_points_tried")
    crashed = run(project, "apply", "--auto-approve", ORCHESTRATOR_CRASH_AT=f"{point}#{nth}", **env)
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr)
    done = converge(project, **env)
    check_invariants(project, serial_before=before, chaos=chaos)
    chaos.add("crash_points_converged")
    return done.runs


def cases(fast: bool):
    for point in POINTS:
        for nth in range(1, MAX_OCCURRENCES + 1):
            is_fast = (point, nth) in FAST_CASES
            if fast == is_fast:
                marks = () if fast else (pytest.mark.slow,)
                yield pytest.param(point, nth, id=f"{point}#{nth}", marks=marks)


@pytest.mark.parametrize(("point", "nth"), [*cases(True), *cases(False)])
def test_crash_at_every_point_converges(scenario, tmp_path, point, nth, chaos):
    base, counts = scenario
    if counts[point] < nth:
        pytest.skip(f"{point} is reached {counts[point]} time(s) by this apply")
    crash_then_converge(base, tmp_path / "p", point, nth, chaos)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before_delete", "after_delete"])
def test_crash_deleting_a_retired_key_after_grace_converges(grace_scenario, tmp_path, point, chaos):
    base, _ = grace_scenario
    crash_then_converge(base, tmp_path / "p", point, 1, chaos, ORCHESTRATOR_NOW=later())


def test_the_scenario_reaches_every_key_crash_point(scenario):
    _, counts = scenario
    unreached = [p for p in POINTS if p != "after_rollback_state" and not counts[p]]
    assert not unreached
