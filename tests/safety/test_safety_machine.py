"""The ordinary operations in any order, with the key-safety invariants checked from outside
after every step: bots' keys work, no live key without material, bounded generations."""

from __future__ import annotations

import subprocess
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from orchestrator.config import init_project
from orchestrator.engine.crashpoints import POINTS
from tests import pg_kit
from tests.safety.safety_kit import (
    bots_keys_work,
    delete_out_of_band,
    generations,
    keys_without_material,
    live_orc_keys,
    ok,
    run,
    run_with_fault,
    widen_out_of_band,
)

pytestmark = pytest.mark.slow

PLAN = """\
version: 1
exchange: {kind: sandbox}
defaults:
  key_type: ed25519
  rotate_after: 30d
  grace: 1h
  secrets: file:secrets/
  ips: [203.0.113.10]
subaccounts:
  - name: quant
    email: quant@example.com
    prune: true
    keys:
      - label: QuantBot-BTC
        profile: quant
      - label: Koinly-Tax
        profile: read-only
        key_type: hmac
        ips: []
        secrets: dotenv:bots/koinly.env
"""
SECOND_PLAN = """\
version: 1
exchange: {kind: sandbox}
defaults: {secrets: 'file:secrets/', ips: []}
subaccounts:
  - name: quant
    email: quant@example.com
    prune: true
    keys:
      - {label: SecondBot, profile: read-only}
"""
LABELS = ("QuantBot-BTC", "Koinly-Tax")
GRACE = timedelta(hours=1)
BOUNDARY = timedelta(minutes=1)  # a deadline this close to now may go either way
FAULTS = ("error_after", "drop_after", "error_before")
FAULTED_ENDPOINTS = ("create_api_key", "delete_api_key")


def new_project(path: Path, schema: str | None = None) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    init_project(path)
    plan = PLAN if schema is None else pg_kit.with_backend(PLAN, schema)
    (path / "plans" / "example.yaml").write_text(plan)
    with open(path / ".gitignore", "a", encoding="utf-8") as ignore:
        ignore.write("bots/\nother/\n")
    return path


class SafetyMachine(RuleBasedStateMachine):
    """One project; each rule is something a user, a scheduler, a crash or an intruder does."""

    figures: Counter[str] = Counter()
    backend = "local"

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        self.schema = pg_kit.new_schema_name() if self.backend == "postgres" else None
        self.project = new_project(Path(self._dir.name), self.schema)
        self.now = datetime.now(UTC)
        self.deadlines: dict[str, datetime] = {}
        self.rotations_allowed: Counter[str] = Counter()
        self.applied = False
        self.apply()

    def teardown(self) -> None:
        self._dir.cleanup()
        if self.schema is not None:
            pg_kit.drop_schema(self.schema)

    # ---- running commands

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        done = run(self.project, *args, now=self.now, **env)
        assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
        return done

    def apply(self) -> None:
        ok(self.project, "apply", "--auto-approve", "--break-stale-lock", now=self.now)
        self.applied = True

    def step(self, name: str, **allowed_rotations: int) -> None:
        self.figures["steps_run"] += 1
        self.figures[f"step_{name}"] += 1
        self.rotations_allowed = Counter(allowed_rotations)
        self.applied = False

    # ---- rules

    @rule(minutes=st.sampled_from([0, 25, 70]))
    def apply_plan(self, minutes: int) -> None:
        self.step("apply")
        self.now += timedelta(minutes=minutes)
        self.apply()

    @rule(label=st.sampled_from(LABELS))
    def rotate_label(self, label: str) -> None:
        self.step("rotate_label", **{label: 1})
        ok(self.project, "rotate", "--auto-approve", "--label", label, now=self.now)
        self.applied = True

    @rule()
    def rotate_due_a_month_later(self) -> None:
        self.step("rotate_due", **dict.fromkeys(LABELS, 1))
        self.now += timedelta(days=31)
        ok(self.project, "rotate", "--due", "--auto-approve", now=self.now)
        self.applied = True

    @rule()
    def restore_state(self) -> None:
        self.step("state_restore")
        self.cli("state", "restore")
        self.grace_restarts()

    @rule(lose_state=st.booleans())
    def rebuild_state(self, lose_state: bool) -> None:
        self.step("state_rebuild")
        if lose_state:
            for path in (self.project / "state").glob("*.state.json*"):
                path.unlink()
        self.cli("state", "rebuild")
        self.grace_restarts()

    @rule(data=st.data())
    def delete_a_live_key_outside_then_apply(self, data) -> None:
        self.step("out_of_band_delete")
        keys = [k for keys in live_orc_keys(self.project).values() for k in keys]
        if keys:
            delete_out_of_band(self.project, data.draw(st.sampled_from(keys)))
        self.apply()

    @rule(data=st.data(), permission=st.sampled_from(["margin_loan", "options"]))
    def widen_a_live_key_outside(self, data, permission: str) -> None:
        self.step("out_of_band_widening")
        keys = [k for keys in live_orc_keys(self.project).values() for k in keys]
        if keys:
            widen_out_of_band(self.project, data.draw(st.sampled_from(keys)), permission)

    @rule()
    def apply_a_second_plan_on_the_same_subaccount(self) -> None:
        self.step("second_plan")
        (self.project / "other").mkdir(exist_ok=True)
        (self.project / "other" / "second.yaml").write_text(SECOND_PLAN)
        self.cli("--plan", "other/second.yaml", "apply", "--auto-approve")

    @rule(point=st.sampled_from(POINTS), rotating=st.sampled_from([None, *LABELS]))
    def kill_at_a_crash_point_then_run_again(self, point: str, rotating: str | None) -> None:
        self.step("crash", **({rotating: 1} if rotating else {}))
        command = ("rotate", "--label", rotating) if rotating else ("apply",)
        self.cli(*command, "--auto-approve", ORCHESTRATOR_CRASH_AT=point)
        self.apply()

    @rule(
        kind=st.sampled_from(FAULTS),
        endpoint=st.sampled_from(FAULTED_ENDPOINTS),
        label=st.sampled_from(LABELS),
    )
    def rotate_through_a_fault_then_apply(self, kind: str, endpoint: str, label: str) -> None:
        self.step("fault", **{label: 1})
        args = ["rotate", "--label", label, "--auto-approve"]
        code, output = run_with_fault(self.project, args, kind, endpoint, self.now)
        assert "Traceback" not in output, output
        self.apply()

    # ---- invariants

    @invariant()
    def bots_keys_work(self) -> None:
        self.check("bots_keys_work", bots_keys_work(self.project).problems)

    @invariant()
    def no_live_key_without_material_after_apply(self) -> None:
        if self.applied:
            self.check("no_key_without_material", keys_without_material(self.project))

    @invariant()
    def generations_bounded_by_grace(self) -> None:
        self.check("generations_bounded", self.generations_beyond_grace())

    def check(self, name: str, problems) -> None:
        self.figures[f"{name}_{'failed' if problems else 'passed'}"] += 1
        assert not problems, "\n".join(problems)

    # ---- the grace model

    def grace_restarts(self) -> None:
        """Lost or restored state may restart a grace window from when it is first seen."""
        for api_key, deadline in self.deadlines.items():
            self.deadlines[api_key] = max(deadline, self.now + GRACE)

    def generations_beyond_grace(self) -> list[str]:
        """Live generations below current whose grace has ended (after a writing command),
        and more newly retired generations than the step's rotations explain."""
        problems = []
        for label in LABELS:
            live = generations(self.project, label)
            retired = [key for n, key in live.items() if n != max(live, default=0)]
            fresh = [key for key in retired if key.api_key not in self.deadlines]
            if len(fresh) > self.rotations_allowed[label]:
                problems.append(f"{label}: {len(fresh)} generations retired in one step")
            for key in fresh:
                self.deadlines[key.api_key] = self.now + GRACE
            problems += [
                f"{label}: {key.api_name} is live after its grace ended"
                for key in retired
                if self.applied and self.deadlines[key.api_key] < self.now - BOUNDARY
            ]
        return problems


@pytest.mark.parametrize("backend", ["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_safety_invariants_hold_whatever_the_order_of_operations(safety_figures, backend, request):
    if backend == "postgres":
        request.getfixturevalue("pg_dsn")
    SafetyMachine.figures = Counter()
    SafetyMachine.backend = backend
    try:
        run_state_machine_as_test(
            SafetyMachine,
            settings=settings(
                max_examples=6,
                stateful_step_count=8,
                deadline=None,
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        for figure, count in SafetyMachine.figures.items():
            safety_figures.add(figure, count)
