"""`reload:`, `check:` and `reload_timeout:` in a plan: inherited from `defaults:`, turned off
per key with `[]`, and every bad value reported with its place and a fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.config import PlanError, load_plan

PLAN = """\
version: 1
defaults:
  ips: [203.0.113.10]
  reload: ["systemctl", "reload", "bot.service"]
{defaults}subaccounts:
  - name: quant
    email: quant@example.com
    keys:
      - label: Inherits
        profile: read-only
      - label: Own
        profile: read-only
        reload: ["pkill", "-HUP", "-f", "bot.py"]
        check: ["curl", "-fsS", "http://127.0.0.1:8080/health"]
        reload_timeout: 2m
      - label: Without
        profile: read-only
        reload: []
{extra}"""


def load(tmp_path: Path, defaults: str = "", extra: str = ""):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(defaults=defaults, extra=extra))
    return load_plan(path)


def test_steps_are_inherited_overridden_and_turned_off(tmp_path: Path):
    keys = {k.label: k for k in load(tmp_path).desired.keys()}
    assert keys["Inherits"].reload == ("systemctl", "reload", "bot.service")
    assert keys["Inherits"].check == () and keys["Inherits"].reload_timeout == timedelta(seconds=30)
    assert keys["Own"].reload == ("pkill", "-HUP", "-f", "bot.py")
    assert keys["Own"].check[0] == "curl" and keys["Own"].reload_timeout == timedelta(minutes=2)
    assert keys["Without"].reload == () and not keys["Without"].switches


@pytest.mark.parametrize(
    ("extra", "where", "says"),
    [
        ("        check: systemctl reload bot\n", "check", "list"),
        ('        check: ["", "x"]\n', "check", "program (its first word) is empty"),
        ("        check: [systemctl, 3]\n", "check[1]", "quote the value"),
        ("        reload_timeout: 0s\n", "reload_timeout", "longer than 0s"),
        ("        reload_timeout: soon\n", "reload_timeout", "duration"),
    ],
)
def test_a_bad_step_is_reported_where_it_is(tmp_path: Path, extra, where, says):
    with pytest.raises(PlanError) as caught:
        load(tmp_path, extra=extra)
    (problem,) = caught.value.problems
    assert problem.path == f"subaccounts[0].keys[2].{where}"
    assert problem.line == 19 and problem.column is not None
    assert says in problem.message + " " + problem.hint


def test_the_schema_describes_the_steps():
    from orchestrator.config import plan_json_schema

    settings = plan_json_schema()["$defs"]["KeyModel"]["properties"]
    assert {"reload", "check", "reload_timeout"} <= set(settings)
