"""`validate` and `plan` acceptance, through typer's CliRunner against the in-process sandbox."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.wiring import Wiring

runner = CliRunner()
ANSI = re.compile(r"\x1b\[")
PLAN = Path("plans") / "example.yaml"
LABELS = ("CopyTrade-Bot", "Koinly-Tax", "QuantBot-BTC")


def cli(*args: str, code: int | None = 0, color: bool = False, wiring: Wiring | None = None):
    result = runner.invoke(app, list(args), catch_exceptions=False, color=color, obj=wiring)
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def refuse_exchange(*args, **kwargs):
    raise AssertionError("the exchange was contacted")


#: Wiring under which any attempt to reach the exchange fails the test.
NO_EXCHANGE = Wiring(open_exchange=refuse_exchange)


def edit_plan(old: str, new: str) -> None:
    text = PLAN.read_text()
    assert old in text
    PLAN.write_text(text.replace(old, new, 1))


def add_unmanaged_key(project: Path, name: str = "mystery-key") -> str:
    """A key made out of band (say in the web UI) in the plan's existing sub-account."""
    from orchestrator.config import ExchangeSettings
    from orchestrator.wiring import open_exchange

    async def create() -> str:
        async with open_exchange(ExchangeSettings(), project) as client:
            created = await client.create_api_key("quant@example.com", name, frozenset(), [])
            return created.api_key

    return asyncio.run(create())


# ---------------------------------------------------------------- validate and a first plan


def test_init_then_validate_passes_and_plan_lists_the_creates(project):
    validated = cli("validate")
    assert "plans/example.yaml: valid (2 sub-accounts, 3 keys)" in validated.output
    planned = cli("plan", "--detailed-exitcode", code=2)
    lines = planned.output.splitlines()
    for address in ("copy", "quant/QuantBot-BTC", "quant/Koinly-Tax", "copy/CopyTrade-Bot"):
        assert any(re.match(rf"\s*\+ create\s+{re.escape(address)}\s", ln) for ln in lines), address
    assert "Plan: 4 to create, 0 to update, 0 to rotate, 0 to delete." in planned.output


def test_plan_output_is_plain_text_when_not_a_terminal(project):
    cli("apply", "--auto-approve")
    add_unmanaged_key(project)
    edit_plan("ips: [198.51.100.7]", "ips: [198.51.100.8]")
    planned = cli("plan", color=True)  # click keeps escapes: any left are the CLI's own
    assert not ANSI.search(planned.output), planned.output
    assert "[/" not in planned.output  # no rich markup printed literally either
    assert "! unmanaged" in planned.output and "~ update" in planned.output


def test_plan_json_carries_actions_findings_summary_and_the_calls_made(project):
    first = json.loads(cli("plan", "--json").stdout)
    assert first["changes"] is True
    assert first["summary"] == {"create": 4, "update": 0, "rotate": 0, "delete": 0}
    assert {a["kind"] for a in first["actions"]} == {"create_subaccount", "create"}
    assert first["findings"] == []
    # only quant exists yet (copy is virtual, made by apply), and it has no key
    assert first["calls"] == {"list_subaccounts": 1, "list_api_keys": 1}
    assert first["calls_total"] == 2

    cli("apply", "--auto-approve")
    add_unmanaged_key(project)
    after = json.loads(cli("plan", "--json").stdout)
    assert after["summary"] == {"create": 0, "update": 0, "rotate": 0, "delete": 0}
    assert [f["kind"] for f in after["findings"]] == ["unmanaged"]
    # the minimum: one listing of sub-accounts, one key listing per sub-account, one IP
    # lookup per live key (3 managed + 1 unmanaged)
    assert after["calls"] == {"get_ip_restriction": 4, "list_api_keys": 2, "list_subaccounts": 1}
    assert after["calls_total"] == 7


def test_verbose_prints_the_calls_line_and_does_not_outlive_its_invocation(project):
    planned = cli("--verbose", "plan")
    assert "Calls: list_api_keys 1, list_subaccounts 1 (total 2)" in planned.stdout
    quiet = cli("plan")
    assert "Calls:" not in quiet.output


def test_out_saves_a_changeset_bound_to_plan_live_and_state(project):
    from orchestrator.engine.changeset import Changeset

    cli("apply", "--auto-approve")
    edit_plan("ips: [198.51.100.7]", "ips: [198.51.100.8]")
    saved = cli("plan", "--out", "cs.json", "--detailed-exitcode", code=2)
    assert "Saved the changeset to cs.json" in saved.output
    data = json.loads(Path("cs.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", data["plan_hash"])
    assert data["live_fingerprint"]
    state = json.loads(Path("state/example.state.json").read_text())
    assert data["state_serial"] == state["serial"] > 0
    changeset = Changeset.from_json(Path("cs.json").read_text())
    assert [a.address for a in changeset.actions] == ["copy/CopyTrade-Bot"]


def test_target_limits_the_actions_and_is_repeatable(project):
    one = json.loads(cli("plan", "--json", "--target", "Koinly-Tax").stdout)
    assert [a["label"] for a in one["actions"]] == ["Koinly-Tax"]
    two = json.loads(
        cli("plan", "--json", "--target", "Koinly-Tax", "--target", "copy/CopyTrade-Bot").stdout
    )
    labels = {a["label"] for a in two["actions"] if a["kind"] == "create"}
    assert labels == {"Koinly-Tax", "CopyTrade-Bot"}
    assert "QuantBot-BTC" not in json.dumps(two["actions"])


def test_unknown_target_exits_1_naming_the_known_labels(project):
    refused = cli("plan", "--target", "Nope", code=1, wiring=NO_EXCHANGE)
    assert "Nope" in refused.output
    for label in LABELS:
        assert label in refused.output


def test_no_refresh_makes_no_call_and_plans_from_state(project):
    cli("apply", "--auto-approve")
    cli("plan", "--no-refresh", "--detailed-exitcode", code=0, wiring=NO_EXCHANGE)
    edit_plan("ips: [198.51.100.7]", "ips: [198.51.100.8]")
    changed = json.loads(cli("plan", "--no-refresh", "--json", wiring=NO_EXCHANGE).stdout)
    assert changed["calls"] == {} and changed["calls_total"] == 0
    assert [a["label"] for a in changed["actions"]] == ["CopyTrade-Bot"]


def test_no_refresh_without_state_plans_every_create(project):
    planned = cli("plan", "--no-refresh", "--detailed-exitcode", code=2, wiring=NO_EXCHANGE)
    assert "Plan: 4 to create" in planned.output


def test_after_apply_plan_shows_no_changes(project):
    applied = cli("apply", "--auto-approve")
    assert "Apply complete: 4 done, 0 failed." in applied.output
    again = cli("plan", "--detailed-exitcode", code=0)
    assert "No changes" in again.output


# ---------------------------------------------------------------- keys not in the plan


def test_out_of_band_key_is_unmanaged_then_deleted_with_prune(project):
    cli("apply", "--auto-approve")
    api_key = add_unmanaged_key(project)
    shown = cli("plan", "--detailed-exitcode", code=0)
    line = next(ln for ln in shown.output.splitlines() if "mystery-key" in ln)
    assert re.match(r"\s*! unmanaged\s+quant/mystery-key\s", line), line
    assert api_key not in shown.output

    edit_plan("    email: quant@example.com", "    email: quant@example.com\n    prune: true")
    pruned = cli("plan", "--detailed-exitcode", code=2)
    line = next(ln for ln in pruned.output.splitlines() if "mystery-key" in ln)
    assert re.match(r"\s*- delete\s+quant/mystery-key\s", line), line
    assert "Plan: 0 to create, 0 to update, 0 to rotate, 1 to delete." in pruned.output
    cli("apply", "--auto-approve")
    assert "No changes" in cli("plan", "--detailed-exitcode", code=0).output


# ---------------------------------------------------------------- errors: exit 1, no traceback


def test_bad_plan_exits_1_with_file_and_line_and_never_calls_the_exchange(project):
    edit_plan("rotate_after: 30d", "rotate_after: 30x")
    for command in (("plan",), ("validate",)):
        refused = cli(*command, code=1, wiring=NO_EXCHANGE)
        assert re.search(r"plans/example\.yaml:\d+:\d+: defaults\.rotate_after", refused.output)
        assert "30x" in refused.output


def test_policy_error_exits_1_before_any_call(project):
    edit_plan("ips: [198.51.100.7]", "ips: [10.0.0.1]")
    refused = cli("plan", code=1, wiring=NO_EXCHANGE)
    assert re.search(r"plans/example\.yaml:\d+:\d+: .*ips\[0\]", refused.output), refused.output


@pytest.mark.parametrize("content", ['{"serial": ', "[1, 2]", '{"serial": "x"}', ""])
def test_corrupt_state_exits_1_with_a_clear_message(project, content):
    cli("apply", "--auto-approve")
    Path("state/example.state.json").write_text(content)
    refused = cli("plan", code=1)
    assert "not a valid state file" in refused.output
    assert "example.state.json" in refused.output
    assert refused.output.count("\n") <= 3  # one message, not a dump


OTHER_PLAN = """\
version: 1
subaccounts:
  - name: tax
    email: tax@example.com
    keys:
      - label: Koinly
        profile: read-only
        ips: []
"""


def test_two_plans_exit_1_listing_them(project):
    Path("plans/other.yaml").write_text(OTHER_PLAN)
    for command in (("plan",), ("validate",)):
        refused = cli(*command, code=1, wiring=NO_EXCHANGE)
        assert "plans/example.yaml" in refused.output and "plans/other.yaml" in refused.output
    chosen = cli("--plan", "plans/other.yaml", "validate", wiring=NO_EXCHANGE)
    assert "valid" in chosen.output


def test_two_plans_naming_one_subaccount_are_a_validate_error_naming_both(project):
    Path("plans/other.yaml").write_text(PLAN.read_text())
    refused = cli("--plan", "plans/other.yaml", "validate", code=1, wiring=NO_EXCHANGE)
    assert "plans/other.yaml:" in refused.output and "example.yaml" in refused.output
    assert "quant@example.com is also managed by" in refused.output


def test_corrupt_state_message_names_only_commands_that_exist(project):
    cli("apply", "--auto-approve")
    cli("apply", "--auto-approve")  # a second save leaves a usable backup
    Path("state/example.state.json").write_text('{"serial": ')
    refused = cli("plan", code=1)
    suggested = re.findall(r"`orchestrator ([a-z ]+?)`", refused.output)
    assert suggested
    for command in suggested:
        cli(*command.split(), "--help")
