"""`orchestrator check`: what would stop the first apply, found before it runs.

Reads two things from the exchange (the master key's own apiRestrictions and the list of
sub-accounts) and judges them against the plan. `problems()` is pure.

A problem *blocks* when apply would fail because of it (the master lacks spot trading, a
planned sub-account is missing or cannot hold API keys, the exchange cannot be read) or when
it is critical (the master can withdraw). A master key without an IP whitelist is only a
warning here, so a first run on the sandbox (whose master has none) can go ahead; `audit`
rates the same finding high, so a scheduled `audit --fail-on high` keeps asking for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from orchestrator.domain.model import Desired, SubAccount
from orchestrator.engine.changeset import Finding, Severity
from orchestrator.engine.hygiene import MASTER, master_findings
from orchestrator.exchange.models import ApiRestrictions

#: findings that make apply fail, whatever their severity.
BLOCKS_APPLY = frozenset(
    {
        "master_no_trading",
        "master_unreadable",
        "missing_subaccount",
        "managed_subaccount",
        "subaccounts_unreadable",
    }
)


@dataclass(frozen=True)
class Problem:
    finding: Finding
    blocks: bool  # apply would fail, or the risk is critical

    def to_dict(self) -> dict:
        return {**self.finding.to_dict(), "blocks": self.blocks}


@dataclass(frozen=True)
class CheckReport:
    master_key: str  # masked
    master: ApiRestrictions | None  # None when it could not be read
    problems: tuple[Problem, ...]
    calls: Mapping[str, int] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not any(p.blocks for p in self.problems)


def problems(
    desired: Desired,
    subaccounts: Iterable[SubAccount] | str,
    master: ApiRestrictions | str,
) -> list[Problem]:
    """Every problem, blocking ones first. `subaccounts` and `master` are the exchange's
    answers, or (a string) why there was none."""
    found = _master(master) + _subaccounts(desired, subaccounts)
    judged = [Problem(f, f.kind in BLOCKS_APPLY or f.severity is Severity.CRITICAL) for f in found]
    return sorted(judged, key=lambda p: (not p.blocks, -p.finding.severity.rank, p.finding.kind))


def _master(master: ApiRestrictions | str) -> list[Finding]:
    if isinstance(master, ApiRestrictions):
        return master_findings(master)
    return [
        Finding(
            "master_unreadable",
            MASTER,
            f"the master key's own permissions could not be read: {master}",
            Severity.HIGH,
            None,
            "check BINANCE_API_KEY and its secret or private key, and that this machine's IP "
            "is in the master key's whitelist",
        )
    ]


def _subaccounts(desired: Desired, listed: Iterable[SubAccount] | str) -> list[Finding]:
    if isinstance(listed, str):
        return [
            Finding(
                "subaccounts_unreadable",
                "sub-accounts",
                f"the account's sub-accounts could not be listed: {listed}",
                Severity.HIGH,
                None,
                "check that the master key may read sub-accounts",
            )
        ]
    by_email = {s.email: s for s in listed}
    found = []
    for planned in desired.subaccounts:
        if planned.email is None:
            continue
        live = by_email.get(planned.email)
        if live is None:
            found.append(_missing(planned.name, planned.email))
        elif live.is_managed or live.is_asset_management:
            found.append(_managed(planned.name, planned.email))
    return found


def _missing(name: str, email: str) -> Finding:
    return Finding(
        "missing_subaccount",
        name,
        f"{email} is not a sub-account of this master account",
        Severity.HIGH,
        None,
        "create it in Binance's web UI, fix the email in the plan, or use `virtual:`",
    )


def _managed(name: str, email: str) -> Finding:
    return Finding(
        "managed_subaccount",
        name,
        f"{email} is a managed or asset-management sub-account: Binance gives those no API "
        "keys through the master",
        Severity.HIGH,
        None,
        "plan keys only for regular or virtual sub-accounts",
    )
