"""rotate, audit and lockdown through the CLI against the in-process sandbox."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.config import ExchangeSettings
from orchestrator.emulator.master import restrict
from orchestrator.exchange.models import Permission
from orchestrator.sinks import open_sink
from orchestrator.wiring import Wiring, open_exchange, open_sandbox
from tests.engine.sandbox_kit import cli

PLAN = "plans/example.yaml"


def set_grace(project: Path, grace: str) -> None:
    path = project / PLAN
    path.write_text(path.read_text().replace("grace: 1h", f"grace: {grace}"))


def live_names(project: Path) -> list[str]:
    emulator = open_sandbox(project / "state" / "sandbox.json")
    return sorted(k.api_name for s in emulator.accounts.subs.values() for k in s.keys.values())


def signed_by_sink_material(project: Path, address: str, ip: str):
    """apiRestrictions signed with the material the sink holds, from `ip`."""
    from orchestrator.emulator.transport import EmulatorTransport
    from orchestrator.exchange.client import BinanceClient
    from orchestrator.exchange.signing import HmacSigner, from_pem

    material = open_sink("file:secrets/", project).read_current(address)
    if material.key_type == "hmac":
        signer = HmacSigner(material.api_key, material.secret)
    else:
        signer = from_pem(material.api_key, material.secret.get_secret_value().encode())
    emulator = open_sandbox(project / "state" / "sandbox.json")
    master = HmacSigner(emulator.master.api_key, SecretStr(emulator.master.secret))

    async def call():
        transport = EmulatorTransport(emulator, client_ip=ip)
        async with BinanceClient("https://sandbox.invalid", master, transport=transport) as c:
            return await c.api_restrictions(signer)

    return asyncio.run(call())


def at(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def test_rotate_label_with_zero_grace_leaves_only_the_new_key(project: Path):
    set_grace(project, "0s")
    cli("apply", "--auto-approve")
    out = cli("rotate", "--label", "QuantBot-BTC", "--auto-approve").output
    assert "rotated to orc-example.QuantBot-BTC-g2" in out and "previous key deleted" in out
    names = live_names(project)
    assert "orc-example.QuantBot-BTC-g2" in names and "orc-example.QuantBot-BTC-g1" not in names
    seen = signed_by_sink_material(project, "quant/QuantBot-BTC", "203.0.113.10")
    assert seen.permissions == {Permission.SPOT, Permission.FUTURES}
    assert "No changes" in cli("plan").output


def test_rotated_hmac_key_material_signs_requests(project: Path):
    path = project / PLAN
    path.write_text(path.read_text().replace("key_type: ed25519", "key_type: hmac"))
    set_grace(project, "0s")
    cli("apply", "--auto-approve")
    cli("rotate", "--label", "Koinly-Tax", "--auto-approve")
    seen = signed_by_sink_material(project, "quant/Koinly-Tax", "127.0.0.1")
    assert seen.permissions == frozenset()


def test_grace_keeps_previous_key_until_it_has_passed(project: Path, monkeypatch):
    cli("apply", "--auto-approve")
    cli("rotate", "--label", "QuantBot-BTC", "--auto-approve")
    assert {"orc-example.QuantBot-BTC-g1", "orc-example.QuantBot-BTC-g2"} <= set(
        live_names(project)
    )
    monkeypatch.setenv("ORCHESTRATOR_NOW", at(0.5))
    assert "Nothing to rotate" in cli("rotate", "--due", "--auto-approve").output
    assert "orc-example.QuantBot-BTC-g1" in live_names(project)
    monkeypatch.setenv("ORCHESTRATOR_NOW", at(2))
    cli("rotate", "--due", "--auto-approve")
    assert "orc-example.QuantBot-BTC-g1" not in live_names(project)
    assert open_sink("file:secrets/", project).read_held("quant/QuantBot-BTC") == []
    assert not (project / "secrets/quant/QuantBot-BTC.g1.json").exists()


def test_rotate_due_with_nothing_due_changes_nothing(project: Path):
    cli("apply", "--auto-approve")
    before = (project / "state" / "example.state.json").read_text()
    assert "Nothing to rotate" in cli("rotate", "--due", "--auto-approve").output
    assert (project / "state" / "example.state.json").read_text() == before


def test_rotate_due_rotates_overdue_keys(project: Path, monkeypatch):
    cli("apply", "--auto-approve")
    monkeypatch.setenv("ORCHESTRATOR_NOW", at(24 * 31))
    out = cli("rotate", "--due", "--auto-approve").output
    assert out.count("rotated to") == 3


def test_rotation_refused_before_any_change_when_it_would_pass_30_keys(project: Path):
    cli("apply", "--auto-approve")

    async def fill():
        async with open_exchange(ExchangeSettings(), project) as client:
            for i in range(28):
                await client.create_api_key("quant@example.com", f"filler{i}", frozenset(), [])

    asyncio.run(fill())
    before = live_names(project)
    refused = cli(
        "rotate", "--label", "QuantBot-BTC", "--label", "Koinly-Tax", "--auto-approve", code=1
    )
    assert "30-key cap" in refused.output
    assert live_names(project) == before


def test_audit_names_out_of_band_widened_and_unwhitelisted_keys(project: Path, monkeypatch):
    cli("apply", "--auto-approve")

    async def tamper():
        async with open_exchange(ExchangeSettings(), project) as client:
            await client.create_api_key(
                "quant@example.com", "rogue", frozenset({Permission.SPOT}), []
            )
            for key in await client.list_all_api_keys("quant@example.com"):
                if key.api_name.startswith("orc-example.Koinly"):
                    await client.set_permissions(key.email, key.api_key, {Permission.SPOT})

    asyncio.run(tamper())
    monkeypatch.setenv("ORCHESTRATOR_NOW", at(24 * 31))
    result = cli("audit", "--json", "--fail-on", "high", code=1)
    found = json.loads(result.output)["findings"]
    kinds = {(f["kind"], f["address"]) for f in found}
    assert ("unmanaged", "quant/rogue") in kinds
    assert ("no_whitelist", "quant/rogue") in kinds
    assert ("widened", "quant/Koinly-Tax") in kinds
    assert ("overdue", "quant/QuantBot-BTC") in kinds
    assert all(f["fix"] for f in found)
    severities = {f["kind"]: f["severity"] for f in found}
    assert severities["widened"] == "critical" and severities["unmanaged"] == "high"


def test_audit_reports_missing_sink_material(project: Path):
    cli("apply", "--auto-approve")
    (project / "secrets" / "quant" / "QuantBot-BTC.json").unlink()
    found = json.loads(cli("audit", "--json").output)["findings"]
    assert any(
        f["kind"] == "missing_secret" and f["address"] == "quant/QuantBot-BTC" for f in found
    )


def test_clean_account_passes_audit(project: Path):
    """Clean includes a master key with an IP whitelist (the sandbox's has none by default)."""
    emulator = open_sandbox(project / "state" / "sandbox.json")
    restrict(emulator.master, ["127.0.0.1"])  # the in-process transport's caller IP
    wiring = Wiring.with_sandbox(emulator)
    cli("apply", "--auto-approve", wiring=wiring)
    assert "No findings" in cli("audit", "--fail-on", "high", wiring=wiring).output


@pytest.mark.parametrize("scope", [[], ["--subaccount", "quant"]])
def test_lockdown_leaves_no_key_in_scope(project: Path, scope):
    cli("apply", "--auto-approve")
    out = cli("lockdown", *scope, "--all", "--yes").output
    assert "orchestrator apply" in out
    names = live_names(project)
    if scope:
        assert names == ["orc-example.CopyTrade-Bot-g1"]
    else:
        assert names == []
    left = [p.name for p in (project / "secrets").rglob("*") if p.is_file()]
    assert left == (["CopyTrade-Bot.json"] if scope else [])  # deleted keys leave no material
    cli("log", "verify")
    cli("apply", "--auto-approve")
    assert "No changes" in cli("plan").output


def test_lockdown_needs_all_and_confirmation(project: Path):
    cli("apply", "--auto-approve")
    assert "--all" in cli("lockdown", "--yes", code=1).output
    assert "--yes" in cli("lockdown", "--all", code=1).output
    assert len(live_names(project)) == 3


def test_audit_names_keys_of_subaccounts_no_plan_names(project: Path):
    cli("apply", "--auto-approve")

    async def elsewhere():
        async with open_exchange(ExchangeSettings(), project) as client:
            email = await client.create_virtual_subaccount("shadow")
            await client.create_api_key(email, "exfil", frozenset(), ["203.0.113.99"])
            return email

    email = asyncio.run(elsewhere())
    result = cli("audit", "--json", "--fail-on", "high", code=1)
    found = json.loads(result.output)["findings"]
    assert any(
        f["kind"] == "unmanaged" and f["address"] == f"{email}/exfil" and f["severity"] == "high"
        for f in found
    )
