"""Two master accounts in one plan, through the CLI against the in-process sandbox: each
account has its own sub-accounts, keys, state, lock, journal and audit log, proven by listing
keys through each master and signing with each sink's material."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.emulator.transport import EmulatorTransport
from orchestrator.exchange.client import BinanceClient
from orchestrator.exchange.signing import HmacSigner, from_pem
from orchestrator.store.files import LocalFileBackend
from orchestrator.wiring import SANDBOX_URL, Wiring
from tests.engine.sandbox_kit import cli, sandbox

PLAN = """\
version: 1
project: desk
accounts:
  - name: main
  - name: fund2
defaults:
  rotate_after: 30d
  grace: 1h
  secrets: file:secrets/
  ips: [203.0.113.10]
subaccounts:
  - name: quant
    email: quant@example.com
    keys:
      - {label: QuantBot, profile: quant, key_type: hmac}
      - {label: Tax, profile: read-only, ips: []}
  - name: fundbot
    account: fund2
    email: fundbot@example.com
    keys:
      - {label: FundBot, profile: quant, key_type: hmac}
  - name: copy
    account: fund2
    virtual: copytrade
    keys:
      - {label: Copy, profile: read-only, ips: []}
"""
MAIN_LABELS = {"QuantBot", "Tax"}
FUND2_LABELS = {"FundBot", "Copy"}
BOT_IP = "203.0.113.10"


@pytest.fixture
def desk(project: Path) -> Path:
    (project / "plans" / "example.yaml").unlink()
    (project / "plans" / "desk.yaml").write_text(PLAN)
    return project


def master_keys(project: Path) -> dict[str, dict[str, list[str]]]:
    """Per master account (listed through that master's own signed calls): the apiNames of
    the keys of each of its sub-accounts."""
    emulator = sandbox(project)

    async def listing(master) -> dict[str, list[str]]:
        signer = HmacSigner(master.api_key, SecretStr(master.secret))
        transport = EmulatorTransport(emulator)
        async with BinanceClient(SANDBOX_URL, signer, transport=transport) as client:
            subs = await client.list_all_subaccounts()
            return {
                s.email: sorted(k.api_name for k in await client.list_all_api_keys(s.email))
                for s in subs
            }

    return {
        "main": asyncio.run(listing(emulator.add_master("main"))),
        "fund2": asyncio.run(listing(emulator.add_master("fund2"))),
    }


def labels_of(keys: dict[str, list[str]]) -> set[str]:
    return {name.removeprefix("orc-desk.").rsplit("-g", 1)[0] for n in keys.values() for name in n}


def sink_refusals(project: Path) -> dict[str, str | None]:
    """Per label: None when apiRestrictions signed with the sink's material, from the
    bot's IP, is accepted by the sandbox."""
    emulator = sandbox(project)
    master = emulator.add_master("main")
    results: dict[str, str | None] = {}
    for path in sorted((project / "secrets").rglob("*.json")):
        data = json.loads(path.read_text())
        if data.get("private_key"):
            signer = from_pem(data["apiKey"], data["private_key"].encode())
        else:
            signer = HmacSigner(data["apiKey"], SecretStr(data["secret"]))

        async def call(signer=signer) -> None:
            transport = EmulatorTransport(emulator, client_ip=BOT_IP)
            master_signer = HmacSigner(master.api_key, SecretStr(master.secret))
            async with BinanceClient(SANDBOX_URL, master_signer, transport=transport) as c:
                await c.api_restrictions(signer)

        try:
            asyncio.run(call())
            results[path.stem] = None
        except Exception as exc:  # noqa: BLE001 - the refusal is the finding
            results[path.stem] = str(exc)
    return results


def sink_secret_values(project: Path) -> list[str]:
    found = []
    for path in (project / "secrets").rglob("*.json"):
        data = json.loads(path.read_text())
        found += [data[f] for f in ("secret", "private_key") if data.get(f)]
    return found


def test_two_accounts_plan_and_apply_each_on_its_own_master(desk: Path):
    planned = cli("plan", "--detailed-exitcode", code=2).output
    assert "== account main ==" in planned and "== account fund2 ==" in planned
    main_part, fund2_part = planned.split("== account fund2 ==")
    assert "quant/QuantBot" in main_part and "fundbot/FundBot" not in main_part
    assert "fundbot/FundBot" in fund2_part and "copy/Copy" in fund2_part
    applied = cli("apply", "--auto-approve").output
    assert "[main] Apply complete: 2 done, 0 failed." in applied
    assert "[fund2] Apply complete: 3 done, 0 failed." in applied  # the virtual one too

    live = master_keys(desk)
    assert set(live["main"]) == {"quant@example.com"}
    assert labels_of(live["main"]) == MAIN_LABELS
    assert "fundbot@example.com" in live["fund2"] and labels_of(live["fund2"]) == FUND2_LABELS
    assert sink_refusals(desk) == dict.fromkeys(sorted(MAIN_LABELS | FUND2_LABELS), None)

    state = desk / "state"
    assert sorted(p.name for p in state.glob("*.state.json")) == [
        "desk@fund2.state.json",
        "desk@main.state.json",
    ]
    for account, labels in (("main", MAIN_LABELS), ("fund2", FUND2_LABELS)):
        recorded = json.loads((state / f"desk@{account}.state.json").read_text())
        assert recorded["plan"] == f"desk@{account}"
        assert {r["label"] for r in recorded["keys"].values()} == labels
        audit = (state / f"audit@{account}.jsonl").read_text()
        assert all(label in audit for label in labels)
        assert not any(label in audit for label in (MAIN_LABELS | FUND2_LABELS) - labels)
    assert not (state / "audit.jsonl").exists()
    verified = cli("log", "verify").output
    assert "state/audit@main.jsonl: intact" in verified
    assert "state/audit@fund2.jsonl: intact" in verified
    # cutting a line off one account's log is caught, and named, by that account's anchor
    fund2_log = state / "audit@fund2.jsonl"
    fund2_log.write_text("".join(fund2_log.read_text().splitlines(keepends=True)[:-1]))
    cut = cli("log", "verify", code=1).output
    assert "state/audit@main.jsonl: intact" in cut and "desk@fund2.state.json" in cut

    again = cli("plan", "--json", "--detailed-exitcode").output
    entries = json.loads(again)["accounts"]
    assert [(e["account"], e["plan"], e["changes"]) for e in entries] == [
        ("main", "desk@main", False),
        ("fund2", "desk@fund2", False),
    ]
    only = cli("--account", "fund2", "plan").output
    assert "== account fund2 ==" in only and "account main" not in only
    listed = cli("state", "list").output
    assert "[fund2] fundbot/FundBot" in listed and "[main] quant/QuantBot" in listed

    secrets = sink_secret_values(desk)
    texts = [planned, applied, again, listed]
    texts += [p.read_text() for p in state.iterdir() if "sandbox" not in p.name and p.is_file()]
    assert secrets and not any(secret in text for secret in secrets for text in texts)


def test_a_failing_account_leaves_the_other_whole(desk: Path):
    cli("apply", "--auto-approve")
    text = (desk / "plans" / "desk.yaml").read_text()
    text = text.replace(
        "{label: Tax, profile: read-only, ips: []}", "{label: Tax2, profile: read-only, ips: []}"
    )
    text = text.replace(
        "{label: Copy, profile: read-only, ips: []}", "{label: Copy2, profile: read-only, ips: []}"
    )
    (desk / "plans" / "desk.yaml").write_text(
        text.replace("  - name: copy\n", "  - name: copy\n    prune: true\n")
    )
    fund2_state = desk / "state" / "desk@fund2.state.json"
    before = fund2_state.read_bytes()

    with LocalFileBackend(desk, "fund2").lock("desk@fund2", "apply"):
        outcome = cli("apply", "--auto-approve", code=1)
    assert "[main] Apply complete: 1 done, 0 failed." in outcome.output
    assert "[fund2] Error:" in outcome.output and str(os.getpid()) in outcome.output
    assert fund2_state.read_bytes() == before  # untouched while its lock was held
    live = master_keys(desk)
    assert "Tax2" in labels_of(live["main"]) and "Copy2" not in labels_of(live["fund2"])
    assert all(r is None for r in sink_refusals(desk).values())

    cli("apply", "--auto-approve")
    live = master_keys(desk)
    assert "Copy2" in labels_of(live["fund2"]) and "Copy" not in labels_of(live["fund2"])
    assert "No changes" in cli("plan").output
    cli("log", "verify")


def test_rotate_due_audit_and_lockdown_per_account(desk: Path, monkeypatch):
    cli("apply", "--auto-approve")
    first = master_keys(desk)
    later = datetime.now(UTC) + timedelta(days=31)
    monkeypatch.setenv("ORCHESTRATOR_NOW", later.isoformat())
    rotated = cli("rotate", "--due", "--auto-approve").output
    assert "[main] Rotation complete" in rotated and "[fund2] Rotation complete" in rotated
    after = master_keys(desk)
    for account in ("main", "fund2"):
        names = [n for keys in after[account].values() for n in keys]
        assert any(n.endswith("-g2") for n in names), (account, names)
    assert all(r is None for r in sink_refusals(desk).values())

    audit = json.loads(cli("audit", "--json").output)
    assert [e["account"] for e in audit["accounts"]] == ["main", "fund2"]

    cli("--account", "fund2", "lockdown", "--all", "--yes")
    gone = master_keys(desk)
    assert all(not keys for keys in gone["fund2"].values())
    assert labels_of(gone["main"]) == MAIN_LABELS and first["main"]
    fund2_audit = (desk / "state" / "audit@fund2.jsonl").read_text()
    assert "lockdown" in fund2_audit
    assert "lockdown" not in (desk / "state" / "audit@main.jsonl").read_text()


def test_a_subaccount_moved_to_another_account_is_refused_clearly(desk: Path):
    cli("apply", "--auto-approve")
    text = (desk / "plans" / "desk.yaml").read_text()
    (desk / "plans" / "desk.yaml").write_text(
        text.replace("  - name: fundbot\n    account: fund2\n", "  - name: fundbot\n")
    )
    refused = cli("plan", code=1)
    assert "fundbot@example.com is a sub-account of another master account" in refused.output


def test_an_unknown_account_option_is_a_clear_error(desk: Path):
    refused = cli("--account", "fund3", "plan", code=1)
    assert "--account fund3: desk.yaml has no such account (accounts: main, fund2)" in (
        refused.output
    )


def test_injected_sandbox_is_shared_by_the_accounts(desk: Path):
    emulator = sandbox(desk)
    cli("apply", "--auto-approve", wiring=Wiring.with_sandbox(emulator))
    assert {k.api_name for s in emulator.account("fund2").subs.values() for k in s.keys.values()}


@pytest.mark.parametrize("point", ["after_create#2", "after_material#3", "after_state#4"])
def test_a_killed_apply_converges_in_both_accounts(desk: Path, point: str):
    """A SIGKILL while both accounts create keys: each account's journal is reconciled by
    the next apply on its own, with no duplicate key and every bot's material working."""
    from tests.safety.safety_kit import run

    killed = run(desk, "apply", "--auto-approve", ORCHESTRATOR_CRASH_AT=point)
    assert killed.returncode != 0
    again = run(desk, "apply", "--auto-approve")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Traceback" not in again.stdout + again.stderr
    live = master_keys(desk)
    for account, labels in (("main", MAIN_LABELS), ("fund2", FUND2_LABELS)):
        names = [n for keys in live[account].values() for n in keys]
        assert sorted(names) == sorted(f"orc-desk.{label}-g1" for label in labels), names
    assert all(r is None for r in sink_refusals(desk).values())
    assert not list((desk / "state").glob("*.journal.jsonl"))
    assert "No changes" in cli("plan").output
    cli("log", "verify")


def test_state_rebuild_per_account_leaves_the_other_alone(desk: Path):
    cli("apply", "--auto-approve")
    state = desk / "state"
    main_before = json.loads((state / "desk@main.state.json").read_text())["keys"]
    for path in state.glob("desk@fund2.state.json*"):
        path.unlink()
    rebuilt = cli("state", "rebuild").output
    assert "[fund2] fundbot/FundBot: recorded orc-desk.FundBot-g1" in rebuilt
    assert "[main]" not in rebuilt  # nothing to adopt there
    assert json.loads((state / "desk@main.state.json").read_text())["keys"] == main_before
    shown = json.loads(cli("state", "show", "FundBot").output)
    assert shown["account"] == "fund2" and shown["label"] == "FundBot"
    assert "No changes" in cli("plan").output
    refused = cli("state", "restore", code=1).output
    assert "--account NAME" in refused


def test_a_sink_problem_in_the_second_account_is_placed_at_its_own_line(desk: Path):
    plan = desk / "plans" / "desk.yaml"
    text = plan.read_text()
    shared = "      - {label: FundBot, profile: quant, key_type: hmac}\n"
    assert shared in text
    clash = "      - {label: FundBot, profile: quant, key_type: hmac, secrets: 'dotenv:x.env'}\n"
    copy = "      - {label: Copy, profile: read-only, ips: []}\n"
    text = text.replace(shared, clash).replace(
        copy, copy.replace("[]}", "[], secrets: 'dotenv:x.env'}")
    )
    plan.write_text(text)
    lines = text.splitlines()
    fundbot, copy_line = (
        next(n for n, line in enumerate(lines, 1) if f"label: {label}" in line)
        for label in ("FundBot", "Copy")
    )
    result = cli("--account", "fund2", "plan", code=1)
    shown = result.output + result.stderr
    assert f"plans/desk.yaml:{fundbot}:" in shown and f"plans/desk.yaml:{copy_line}:" in shown
    assert "defaults" not in shown  # each problem at its key's own `secrets:`


def test_apply_and_lockdown_json_give_one_document_with_an_entry_per_account(desk: Path):
    applied = json.loads(cli("apply", "--auto-approve", "--json").stdout)
    entries = {entry["account"]: entry for entry in applied["accounts"]}
    assert set(entries) == {"main", "fund2"}
    assert entries["main"]["done"] == len(MAIN_LABELS) and entries["main"]["failed"] == 0
    assert entries["fund2"]["done"] >= len(FUND2_LABELS) and entries["fund2"]["failed"] == 0
    locked = json.loads(cli("lockdown", "--all", "--yes", "--json").stdout)
    deleted = {e["account"]: {k["api_name"] for k in e["deleted"]} for e in locked["accounts"]}
    assert {name.split(".")[1].rsplit("-g", 1)[0] for name in deleted["fund2"]} == FUND2_LABELS
    assert master_keys(desk) == {
        "main": {email: [] for email in master_keys(desk)["main"]},
        "fund2": {email: [] for email in master_keys(desk)["fund2"]},
    }
