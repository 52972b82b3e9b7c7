"""The plan's `notify:` targets and `notify_level:`: checked at load, with positions, and
without quoting a URL that may carry a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import PlanError, load_plan
from orchestrator.notify import NotifySettings

PLAN = """\
version: 1
subaccounts: []
notify:
  - json://hooks.example.com/ops
  - {second}
notify_level: {level}
"""


def load(tmp_path: Path, second: str = "jsons://hooks.example.com/x", level: str = "medium"):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(second=second, level=level))
    return load_plan(path)


def problems(tmp_path: Path, **values) -> list[str]:
    with pytest.raises(PlanError) as refused:
        load(tmp_path, **values)
    return [p.format() for p in refused.value.problems]


def test_targets_and_level_are_read(tmp_path):
    assert load(tmp_path).notify == NotifySettings(
        ("json://hooks.example.com/ops", "jsons://hooks.example.com/x"), "medium"
    )


def test_a_plan_without_notify_sends_nothing_and_uses_high(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("version: 1\nsubaccounts: []\n")
    assert load_plan(path).notify == NotifySettings((), "high")


@pytest.mark.parametrize(
    ("second", "said"),
    [
        ("nosuch://Tok3nCanary/x", "apprise cannot use this nosuch:// URL"),
        ("hooks.example.com/Tok3nCanary", "not an apprise URL (SCHEME://...)"),
        ("json://", "apprise cannot use this json:// URL"),
        ("42", "expected"),
    ],
)
def test_a_malformed_target_is_an_error_at_its_line(tmp_path, second, said):
    [problem] = problems(tmp_path, second=second)
    assert ":5:5: notify[1]: " in problem
    assert said in problem
    assert "Tok3nCanary" not in problem


def test_an_unknown_level_is_an_error_at_its_line(tmp_path):
    [problem] = problems(tmp_path, level="urgent")
    assert ":6:15: notify_level: " in problem and "'urgent'" in problem
    assert "low" in problem and "critical" in problem
