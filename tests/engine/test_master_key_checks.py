"""The master key's own permissions and whitelist: `audit` findings and the `check` command,
against the sandbox (its master has spot trading and no whitelist unless a test changes it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.emulator.master import restrict, without_trading
from orchestrator.engine.changeset import Severity
from orchestrator.engine.hygiene import master_findings
from orchestrator.engine.preflight import problems
from orchestrator.exchange.models import ApiRestrictions, Permission, SubAccount
from orchestrator.wiring import Wiring
from tests.engine.sandbox_kit import cli, sandbox

#: the in-process transport's caller IP: a master whitelisted to it keeps working.
SANDBOX_CALLER = "127.0.0.1"
MASTER_TRADING = "enable 'Enable Spot & Margin Trading' on the master API key"


def on_sandbox(project: Path, *, trading: bool = True, whitelist: bool = False, withdraw=False):
    """The project's sandbox with its master changed as asked (in memory, for this test)."""
    emulator = sandbox(project)
    if not trading:
        without_trading(emulator.master)
    if whitelist:
        restrict(emulator.master, [SANDBOX_CALLER])
    emulator.master.can_withdraw = withdraw
    return emulator, Wiring.with_sandbox(emulator)


def kinds(found: list[dict]) -> dict[str, str]:
    return {f["kind"]: f["severity"] for f in found if f["address"] == "master key"}


def restrictions(*, spot=True, ip_restrict=False, withdrawals=False) -> ApiRestrictions:
    return ApiRestrictions(
        ip_restrict=ip_restrict,
        create_time=0,
        enable_reading=True,
        enable_withdrawals=withdrawals,
        enable_internal_transfer=True,
        permissions=frozenset({Permission.SPOT} if spot else ()),
    )


def test_master_findings_name_withdrawals_whitelist_and_trading():
    found = {f.kind: f for f in master_findings(restrictions(spot=False, withdrawals=True))}
    assert found["master_withdrawals"].severity is Severity.CRITICAL
    assert found["master_no_whitelist"].severity is Severity.HIGH
    assert found["master_no_trading"].severity is Severity.HIGH
    assert all(f.fix and f.address == "master key" for f in found.values())
    assert master_findings(restrictions(ip_restrict=True)) == []


def test_audit_reports_a_master_that_can_withdraw_as_critical(project: Path):
    _, wiring = on_sandbox(project, withdraw=True)
    cli("apply", "--auto-approve", wiring=wiring)
    result = cli("audit", "--json", "--fail-on", "critical", code=1, wiring=wiring)
    found = json.loads(result.output)["findings"]
    assert kinds(found) == {"master_withdrawals": "critical", "master_no_whitelist": "high"}
    assert found[0]["kind"] == "master_withdrawals" and "Enable Withdrawals" in found[0]["fix"]


def test_audit_reports_a_master_without_whitelist_as_high(project: Path):
    cli("apply", "--auto-approve")
    result = cli("audit", "--json", "--fail-on", "high", code=1)
    found = json.loads(result.output)["findings"]
    assert [(f["kind"], f["severity"]) for f in found] == [("master_no_whitelist", "high")]


def test_audit_of_a_whitelisted_master_has_no_master_findings(project: Path):
    _, wiring = on_sandbox(project, whitelist=True)
    cli("apply", "--auto-approve", wiring=wiring)
    assert "No findings" in cli("audit", "--fail-on", "high", wiring=wiring).output


def test_check_on_the_default_sandbox_warns_about_the_whitelist_and_passes(project: Path):
    out = cli("check").output
    assert "plans/example.yaml: valid (2 sub-accounts, 3 keys)" in out
    assert "Enable Spot & Margin Trading" in out and "Enable Withdrawals" not in out
    assert "IP whitelist: none" in out
    assert "WARNING" in out and "master_no_whitelist" in out
    assert "Ready to apply" in out
    assert not (project / "state" / "example.state.json").exists(), "check changes nothing"


def test_check_fails_for_a_master_without_trading(project: Path):
    _, wiring = on_sandbox(project, trading=False, whitelist=True)
    out = cli("check", wiring=wiring, code=1).output
    assert "master_no_trading" in out and MASTER_TRADING in out
    assert "Not ready" in out


def test_check_fails_for_a_master_that_can_withdraw(project: Path):
    _, wiring = on_sandbox(project, whitelist=True, withdraw=True)
    result = cli("check", "--json", wiring=wiring, code=1)
    report = json.loads(result.output)
    assert report["ready"] is False
    assert [(p["kind"], p["blocks"]) for p in report["problems"]] == [("master_withdrawals", True)]
    assert report["master"]["withdrawals"] is True
    assert report["master"]["api_key"] not in (None, "") and "…" in report["master"]["api_key"]
    assert set(report["calls"]) == {"api_restrictions", "list_subaccounts"}


def test_check_of_a_sound_master_is_clean(project: Path):
    _, wiring = on_sandbox(project, whitelist=True)
    out = cli("check", wiring=wiring).output
    assert "IP whitelist: on" in out and "WARNING" not in out and "Ready to apply." in out


def test_check_refuses_an_invalid_plan_without_calling_the_exchange(project: Path):
    plan = project / "plans" / "example.yaml"
    plan.write_text(plan.read_text().replace("rotate_after: 30d", "rotate_after: 30x"))
    out = cli("check", code=1).output
    assert "rotate_after" in out
    assert not (project / "state" / "sandbox.json").exists()


@pytest.mark.parametrize(
    "listed, kind",
    [
        ([], "missing_subaccount"),
        ([SubAccount(email="quant@example.com", is_managed=True)], "managed_subaccount"),
        ([SubAccount(email="quant@example.com", is_asset_management=True)], "managed_subaccount"),
    ],
)
def test_preflight_blocks_subaccounts_apply_cannot_give_keys(project: Path, listed, kind):
    desired = Wiring().open_workspace(None).plan.desired
    found = problems(desired, listed, restrictions(ip_restrict=True))
    assert [(p.finding.kind, p.finding.address, p.blocks) for p in found] == [(kind, "quant", True)]
