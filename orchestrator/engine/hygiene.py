"""The security hygiene report (`orchestrator audit`), from Binance's own advice on stolen
keys and clean-up.

`findings()` is pure: it reads the desired plan, the live account, state, what the sinks hold
and what `apiRestrictions` said for the keys whose material we hold. `gather()` collects the
last two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from orchestrator.config.policy import MAX_KEYS_PER_ACCOUNT
from orchestrator.domain.model import Desired, Live, LiveKey
from orchestrator.domain.permissions import Permission
from orchestrator.engine.changeset import (
    DeleteKey,
    Finding,
    Rotate,
    Severity,
    UpdateIps,
    UpdatePermissions,
)
from orchestrator.engine.diff import current_keys, diff, resolve_email
from orchestrator.exchange.models import ApiRestrictions
from orchestrator.store.audit import mask_key
from orchestrator.store.state import State

KEY_CAP = MAX_KEYS_PER_ACCOUNT
CROWDED = 25
MASTER = "master key"
MASTER_TRADING = "Enable Spot & Margin Trading"


@dataclass(frozen=True)
class Evidence:
    """What the sinks and the keys themselves say, per planned address."""

    material: Mapping[str, str | None]  # address -> api key of the sink's current material
    restrictions: Mapping[str, ApiRestrictions | str]  # address -> answer, or why none
    master: ApiRestrictions | str | None = None  # the master key's own answer, or why none


def findings(
    desired: Desired, live: Live, state: State | None, now: datetime, evidence: Evidence
) -> list[Finding]:
    changeset = diff(desired, live, state, now)
    found = [_from_changeset_finding(f) for f in changeset.findings]
    for action in changeset.actions:
        if isinstance(action, UpdatePermissions | UpdateIps) and action.security:
            found.append(
                Finding(
                    "widened",
                    action.address,
                    f"{action.reason}; key {mask_key(action.api_key)}",
                    Severity.CRITICAL,
                    action.api_key,
                    "orchestrator apply (narrows it); if nobody on your team did "
                    "this, treat the master key as stolen: orchestrator lockdown --all",
                )
            )
        elif isinstance(action, Rotate):
            found.append(
                Finding(
                    "overdue",
                    action.address,
                    action.reason,
                    Severity.MEDIUM,
                    action.api_key,
                    f"orchestrator rotate --label {action.label}",
                )
            )
        elif isinstance(action, DeleteKey) and action.label is None:
            found.append(
                Finding(
                    "unmanaged",
                    action.address,
                    "not in plan; `apply` will delete it (prune)",
                    Severity.HIGH,
                    action.api_key,
                    "orchestrator apply",
                )
            )
    found += _outside_plan(desired, live, state)
    current = current_keys(desired, live, state)
    found += _unwhitelisted(desired, live, state, current)
    found += _missing_material(current, evidence)
    found += _withdrawals(current, evidence)
    found += _crowded(desired, live, state)
    found += _master_checked(evidence.master)
    return sorted(found, key=lambda f: (-f.severity.rank, f.address, f.kind))


def _from_changeset_finding(finding: Finding) -> Finding:
    """The plan's finding as the report names it: a live generation with no material in its
    sink is the report's `missing_secret`."""
    fixes = {
        "unmanaged": "add it to the plan and `orchestrator import`, or set prune: true and "
        "`orchestrator apply`",
        "unbacked": "`orchestrator apply` makes and stores a new key for the bots; delete this "
        "one in Binance once nothing uses it",
    }
    return Finding(
        "missing_secret" if finding.kind == "unbacked" else finding.kind,
        finding.address,
        finding.message,
        finding.severity,
        finding.api_key,
        fixes.get(finding.kind, finding.fix),
    )


def _outside_plan(desired: Desired, live: Live, state: State | None) -> list[Finding]:
    """Keys of sub-accounts that no plan names: nobody declared what they are for."""
    planned = set(_names_by_email(desired, live, state))
    return [
        Finding(
            "unmanaged",
            f"{email}/{key.api_name}",
            "in a sub-account the plan does not name",
            Severity.HIGH,
            key.api_key,
            "add the sub-account and key to a plan, or delete it: "
            f"orchestrator lockdown --subaccount {email} --all",
        )
        for email, keys in sorted(live.keys.items())
        if email not in planned
        for key in keys
    ]


def _unwhitelisted(
    desired: Desired, live: Live, state: State | None, current: Mapping[str, LiveKey]
) -> list[Finding]:
    accepted = {
        current[k.address].api_key: k for k in desired.keys() if k.address in current and not k.ips
    }
    out = []
    names = _names_by_email(desired, live, state)
    for email, keys in sorted(live.keys.items()):
        for key in keys:
            if not key.permissions or key.restricted:
                continue
            perms = ", ".join(sorted(p.value for p in key.permissions))
            planned = accepted.get(key.api_key)
            address = planned.address if planned else f"{names.get(email, email)}/{key.api_name}"
            if planned:
                out.append(
                    Finding(
                        "no_whitelist",
                        address,
                        f"trading key ({perms}) accepts any IP, as the plan allows "
                        "(ip_restriction: none)",
                        Severity.LOW,
                        key.api_key,
                        "give it ips: in the plan when its callers have fixed addresses",
                    )
                )
            else:
                out.append(
                    Finding(
                        "no_whitelist",
                        address,
                        f"trading key ({perms}) accepts calls from any IP",
                        Severity.HIGH,
                        key.api_key,
                        "add ips: to its plan entry and `orchestrator apply`",
                    )
                )
    return out


def _missing_material(current: Mapping[str, LiveKey], evidence: Evidence) -> list[Finding]:
    out = []
    for address, key in sorted(current.items()):
        held = evidence.material.get(address)
        if held == key.api_key:
            continue
        what = "no material" if held is None else f"material of another key ({mask_key(held)})"
        out.append(
            Finding(
                "missing_secret",
                address,
                f"live key {mask_key(key.api_key)} has {what} in its sink",
                Severity.HIGH,
                key.api_key,
                f"orchestrator rotate --label {address.split('/', 1)[1]}",
            )
        )
    return out


def _withdrawals(current: Mapping[str, LiveKey], evidence: Evidence) -> list[Finding]:
    out = []
    for address, answer in sorted(evidence.restrictions.items()):
        if isinstance(answer, ApiRestrictions) and answer.enable_withdrawals:
            key = current.get(address)
            out.append(
                Finding(
                    "withdrawals",
                    address,
                    "apiRestrictions shows withdrawals enabled",
                    Severity.CRITICAL,
                    key.api_key if key else None,
                    "disable withdrawals in Binance's web UI now, then `orchestrator rotate "
                    f"--label {address.split('/', 1)[1]}`",
                )
            )
    return out


def master_findings(master: ApiRestrictions) -> list[Finding]:
    """What is risky or blocking about the master key itself: it can withdraw (critical), it
    accepts any IP (high), it lacks spot trading so no key can be created (high)."""
    found = []
    if master.enable_withdrawals:
        found.append(
            Finding(
                "master_withdrawals",
                MASTER,
                "the master API key can withdraw funds; the orchestrator never needs that",
                Severity.CRITICAL,
                None,
                "turn off 'Enable Withdrawals' on the master API key in Binance's API "
                "Management now",
            )
        )
    if not master.ip_restrict:
        found.append(
            Finding(
                "master_no_whitelist",
                MASTER,
                "the master API key accepts calls from any IP; Binance also turns off spot "
                "trading on a key without a whitelist 30 days after it was enabled, and then "
                "apply cannot create keys",
                Severity.HIGH,
                None,
                "restrict the master API key to the IPs the orchestrator runs from "
                "('Restrict access to trusted IPs only' in API Management)",
            )
        )
    if Permission.SPOT not in master.permissions:
        found.append(
            Finding(
                "master_no_trading",
                MASTER,
                f"the master API key lacks '{MASTER_TRADING}', which Binance requires to "
                "create keys, change whitelists and create virtual sub-accounts: apply fails",
                Severity.HIGH,
                None,
                f"enable '{MASTER_TRADING}' on the master API key",
            )
        )
    return found


def _master_checked(master: ApiRestrictions | str | None) -> list[Finding]:
    if master is None:
        return []
    if isinstance(master, str):
        return [
            Finding(
                "master_unchecked",
                MASTER,
                f"the master key's own permissions could not be read: {master}",
                Severity.MEDIUM,
                None,
                "check the master API key in Binance's API Management",
            )
        ]
    return master_findings(master)


def _crowded(desired: Desired, live: Live, state: State | None) -> list[Finding]:
    out = []
    names = _names_by_email(desired, live, state)
    for email, keys in sorted(live.keys.items()):
        if len(keys) >= CROWDED:
            out.append(
                Finding(
                    "crowded",
                    names.get(email, email),
                    f"{len(keys)} of {KEY_CAP} keys in use; rotations need free slots",
                    Severity.MEDIUM,
                    None,
                    "delete unused keys (prune: true) and `orchestrator apply`",
                )
            )
    return out


def _names_by_email(desired: Desired, live: Live, state: State | None) -> dict[str, str]:
    return {e: s.name for s in desired.subaccounts if (e := resolve_email(s, live, state))}


async def gather(
    exchange, desired: Desired, live: Live, state: State | None, open_sink: Callable
) -> Evidence:
    """Ask each planned key's sink for its material, and `apiRestrictions` signed with it."""
    import asyncio

    current = current_keys(desired, live, state)
    planned = {k.address: k for k in desired.keys()}
    material: dict[str, str | None] = {}
    signers = {}
    for address, key in current.items():
        held = _read_current(open_sink, planned[address].sink, address)
        material[address] = held.api_key if held else None
        if held and held.api_key == key.api_key:
            signers[address] = _signer(held)
    answers = await asyncio.gather(
        *(_restrictions(exchange, s) for s in signers.values()), return_exceptions=False
    )
    return Evidence(
        material=material,
        restrictions=dict(zip(signers, answers, strict=True)),
        master=await master_restrictions(exchange),
    )


def _read_current(open_sink: Callable, spec: str, address: str):
    from orchestrator.sinks import SinkError

    try:
        return open_sink(spec).read_current(address)
    except SinkError:
        return None


def _signer(material):
    from orchestrator.exchange.signing import HmacSigner, from_pem

    secret = material.secret.get_secret_value()
    if material.key_type == "hmac":
        return HmacSigner(material.api_key, material.secret)
    return from_pem(material.api_key, secret.encode())


async def master_restrictions(exchange) -> ApiRestrictions | str:
    """The master key's own apiRestrictions, or why they could not be read."""
    from orchestrator.exchange.errors import ExchangeError

    try:
        return await exchange.master_restrictions()
    except ExchangeError as exc:
        return str(exc)


async def _restrictions(exchange, signer) -> ApiRestrictions | str:
    from orchestrator.exchange.errors import ExchangeError

    try:
        return await exchange.api_restrictions(signer)
    except ExchangeError as exc:
        return f"not checked: {exc.message}"
