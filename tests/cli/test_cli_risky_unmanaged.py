"""`plan` beside live keys no plan manages: a read-only one is named; one that can trade or
move funds is risky, and `--detailed-exitcode` says so with exit 3 when nothing is to change."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from orchestrator.domain.permissions import Permission
from tests.cli.test_cli_plan_acceptance import cli, edit_plan


def add_key(project: Path, name: str, permissions=frozenset(), ips=()) -> str:
    """A key made out of band (say in the web UI) in the plan's sub-account `quant`."""
    from orchestrator.config import ExchangeSettings
    from orchestrator.wiring import open_exchange

    async def create() -> str:
        async with open_exchange(ExchangeSettings(), project) as client:
            created = await client.create_api_key(
                "quant@example.com", name, frozenset(permissions), list(ips)
            )
            return created.api_key

    return asyncio.run(create())


def test_no_changes_and_nothing_unmanaged_exits_0(project):
    cli("apply", "--auto-approve")
    planned = cli("plan", "--detailed-exitcode", code=0)
    assert "No changes. Live keys match the plan." in planned.output


def test_a_read_only_unmanaged_key_is_named_but_exits_0(project):
    cli("apply", "--auto-approve")
    add_key(project, "tracker")
    planned = cli("plan", "--detailed-exitcode", code=0)
    assert "No changes. Live keys match the plan." not in planned.output
    assert "1 live key(s) not in the plan (above) can only read" in planned.output
    assert "risky" not in planned.output


def test_an_unmanaged_trading_key_without_whitelist_exits_3(project):
    cli("apply", "--auto-approve")
    add_key(project, "rogue", {Permission.SPOT, Permission.FUTURES})
    planned = cli("plan", "--detailed-exitcode", code=3)
    [line] = [ln for ln in planned.output.splitlines() if "quant/rogue" in ln]
    assert line.lstrip().startswith("! unmanaged")
    assert "risky: it can trade or move funds (futures, spot) from any IP" in line
    assert "No changes to the planned keys, but 1 unmanaged key that can trade" in planned.output
    assert "Live keys match the plan" not in planned.output
    cli("plan", code=0)  # without --detailed-exitcode: exit 0, as before
    data = json.loads(cli("plan", "--json", "--detailed-exitcode", code=3).stdout)
    assert data["risky_unmanaged"] == 1
    assert [f["risky"] for f in data["findings"]] == [True]


def test_a_whitelisted_trading_key_is_still_risky(project):
    cli("apply", "--auto-approve")
    add_key(project, "rogue", {Permission.UNIVERSAL_TRANSFER}, ["203.0.113.99"])
    planned = cli("plan", "--detailed-exitcode", code=3)
    assert "(universal_transfer) only from 203.0.113.99" in planned.output


def test_changes_win_over_risky_keys_exit_2(project):
    """Terraform's 2 keeps its meaning: something to apply. The risky key is still listed."""
    cli("apply", "--auto-approve")
    add_key(project, "rogue", {Permission.SPOT})
    edit_plan("ips: [198.51.100.7]", "ips: [198.51.100.8]")
    planned = cli("plan", "--detailed-exitcode", code=2)
    assert "risky: it can trade" in planned.output
    assert "Plan: 0 to create, 1 to update" in planned.output


def test_prune_deletes_the_risky_key_and_the_signal_goes(project):
    cli("apply", "--auto-approve")
    add_key(project, "rogue", {Permission.SPOT})
    edit_plan("  - name: quant\n", "  - name: quant\n    prune: true\n")
    cli("plan", "--detailed-exitcode", code=2)
    cli("apply", "--auto-approve")
    cli("plan", "--detailed-exitcode", code=0)
