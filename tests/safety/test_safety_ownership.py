"""Only the owner deletes: two plans naming one sub-account never prune each other's keys,
and a key adopted by import stays adopted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.safety.safety_kit import (
    bots_keys_work,
    generations,
    live_api_keys,
    make_key_out_of_band,
    ok,
    plan_lines,
    run,
)

# the tests write their own plan files: which plans own which keys, on the local store
pytestmark = [pytest.mark.safety, pytest.mark.local_files]

PRUNING_PLAN = """\
version: 1
exchange: {{kind: sandbox}}
defaults:
  secrets: file:secrets/
  ips: []
subaccounts:
  - name: quant
    email: quant@example.com
    prune: true
    keys:
      - label: {label}
        profile: read-only
"""


def write_plan(project: Path, path: str, label: str) -> str:
    target = project / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(PRUNING_PLAN.format(label=label))
    return path


def test_a_second_plan_pruning_the_same_subaccount_is_refused_naming_both(project: Path):
    (project / "plans" / "example.yaml").unlink()
    alpha = write_plan(project, "plans/alpha.yaml", "AlphaBot")
    ok(project, "--plan", alpha, "apply", "--auto-approve")
    bravo = write_plan(project, "plans/bravo.yaml", "BravoBot")
    alpha_keys = {k.api_key for k in generations(project, "AlphaBot").values()}

    for command in (("plan",), ("apply", "--auto-approve")):
        done = run(project, "--plan", bravo, *command)
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert "alpha" in output and "bravo" in output, output

    assert alpha_keys <= live_api_keys(project)
    assert bots_keys_work(project, alpha)


def test_a_plan_of_the_same_name_elsewhere_never_deletes_the_first_plans_keys(project: Path):
    write_plan(project, "plans/example.yaml", "FirstBot")
    other = write_plan(project, "other/example.yaml", "OtherBot")
    ok(project, "apply", "--auto-approve")
    first_keys = {k.api_key for k in generations(project, "FirstBot").values()}

    done = run(project, "--plan", other, "apply", "--auto-approve")
    output = done.stdout + done.stderr
    assert done.returncode in (0, 1), output
    if done.returncode == 1:
        assert "plans/example.yaml" in output and "other/example.yaml" in output, output
    assert first_keys <= live_api_keys(project), output
    assert bots_keys_work(project)

    other_keys = {k.api_key for k in generations(project, "OtherBot").values()}
    ok(project, "apply", "--auto-approve")
    assert first_keys | other_keys <= live_api_keys(project)


def test_import_all_keeps_a_key_imported_by_hand(project: Path):
    ok(project, "apply", "--auto-approve")
    legacy = make_key_out_of_band(project, "quant@example.com", "legacy bot")
    path = project / "plans" / "example.yaml"
    path.write_text(
        path.read_text().replace(
            "      - label: Koinly-Tax\n",
            "      - label: LegacyBot\n        profile: read-only\n        ips: []\n"
            "      - label: Koinly-Tax\n",
        )
    )
    ok(project, "import", "--subaccount", "quant", "--apikey", legacy, "--label", "LegacyBot")
    ok(project, "import", "--all")

    assert legacy[-4:] in ok(project, "state", "show", "LegacyBot")
    output = ok(project, "plan")
    changes = [line for line in plan_lines(output, "quant/LegacyBot") if "create" in line]
    changes += [line for line in plan_lines(output, "quant/LegacyBot") if "delete" in line]
    assert not changes, output
    assert legacy in live_api_keys(project)
