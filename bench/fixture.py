"""A benchmark fixture (sub-accounts x keys): its plan file, and the calls it needs at least.

The minimum is computed here from the fixture and Binance's rules, independently of the
orchestrator: listing sub-accounts takes one page per 200, listing a sub-account's keys one page
per 100 keys (and one call even when it has none), a key's IP whitelist is only visible through
its own get-IP-restriction call, and creating a key is one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from orchestrator.exchange import endpoints as ep

SUBACCOUNT_PAGE = 200
KEY_PAGE = 100
KEY_IPS = ["203.0.113.10"]


@dataclass(frozen=True)
class Fixture:
    subaccounts: int
    keys: int

    @property
    def name(self) -> str:
        return f"{self.subaccounts}x{self.keys}"

    @property
    def total_keys(self) -> int:
        return self.subaccounts * self.keys

    def emails(self, prefix: str = "sub") -> list[str]:
        return [f"{prefix}{i:04d}@bench.example" for i in range(self.subaccounts)]

    def label(self, j: int) -> str:
        return f"Bot{j:02d}"

    def plan_yaml(
        self, endpoint: str, window_s: float, prefix: str = "sub", accounts: tuple = ()
    ) -> str:
        """The plan; with `accounts` ((name, api key variable, secret variable, email
        prefix), ...) one copy of the fixture per master account, each on its own emails."""
        lines = [
            "version: 1",
            "exchange:",
            "  kind: binance",
            f"  endpoint: {endpoint}",
            f"  rate_window_s: {window_s}",
            "defaults:",
            "  key_type: ed25519",
            "  rotate_after: 30d",
            "  secrets: file:secrets/",
            f"  ips: [{', '.join(KEY_IPS)}]",
        ]
        if accounts:
            lines.append("accounts:")
            for name, key_env, secret_env, _ in accounts:
                lines += [f"  - name: {name}", f"    api_key_env: {key_env}"]
                lines.append(f"    secret_env: {secret_env}")
        lines.append("subaccounts:")
        for account, email_prefix in [(a[0], a[3]) for a in accounts] or [(None, prefix)]:
            lines += self._subaccount_lines(email_prefix, account)
        return "\n".join(lines) + "\n"

    def _subaccount_lines(self, prefix: str, account: str | None) -> list[str]:
        lines = []
        for i, email in enumerate(self.emails(prefix)):
            lines += [f"  - name: {account or 's'}{i:04d}", f"    email: {email}"]
            lines += [f"    account: {account}"] if account else []
            lines.append("    keys:")
            for j in range(self.keys):
                profile = "quant" if j == 0 else "read-only"
                lines += [f"      - label: {self.label(j)}", f"        profile: {profile}"]
        return lines

    def write_project(
        self,
        root: Path,
        endpoint: str,
        window_s: float,
        prefix: str = "sub",
        accounts: tuple = (),
    ) -> Path:
        (root / "plans").mkdir(parents=True, exist_ok=True)
        (root / "state").mkdir(exist_ok=True)
        (root / "secrets").mkdir(mode=0o700, exist_ok=True)
        plan = root / "plans" / "bench.yaml"
        plan.write_text(self.plan_yaml(endpoint, window_s, prefix, accounts))
        return plan

    # -- the calls each operation needs at least, by endpoint name --------------------------

    def _list_pages(self, keys_per_sub: int) -> dict[str, int]:
        return {
            ep.LIST_SUBACCOUNTS.name: math.ceil(max(self.subaccounts, 1) / SUBACCOUNT_PAGE),
            ep.LIST_API_KEYS.name: self.subaccounts * max(1, math.ceil(keys_per_sub / KEY_PAGE)),
        }

    def minimum_plan_scratch(self) -> dict[str, int]:
        """Sub-accounts exist, no keys yet: list sub-accounts, list each one's keys."""
        return self._list_pages(0)

    def minimum_plan_unchanged(self) -> dict[str, int]:
        """Every key exists as planned: the listing, plus each key's IP whitelist."""
        return {**self._list_pages(self.keys), ep.GET_IP_RESTRICTION.name: self.total_keys}

    def minimum_apply_scratch(self) -> dict[str, int]:
        """The refresh of an empty account, then one create per key (created with its IPs)."""
        return {**self._list_pages(0), ep.CREATE_API_KEY.name: self.total_keys}


def weighted(calls: dict[str, int]) -> dict[str, int]:
    """Calls on weighted /sapi endpoints only (the clock sync on /api/v3/time is not one)."""
    return {
        name: n
        for name, n in calls.items()
        if name in ep.BY_NAME and ep.BY_NAME[name].limit != "API"
    }


def floor_s(calls: dict[str, int], window_s: float) -> tuple[float, str | None]:
    """The wall time the rate limits force: the largest, over endpoints, of
    calls x weight / budget windows (each endpoint has its own budget)."""
    best, which = 0.0, None
    for name, n in calls.items():
        endpoint = ep.BY_NAME.get(name)
        if endpoint is None:
            continue
        windows = n * endpoint.weight / endpoint.budget
        if windows > best:
            best, which = windows, name
    return best * window_s, which


def true_floor_s(calls: dict[str, int], window_s: float, latency_s: float) -> tuple[int, float]:
    """The windows the rate limits force on a run that starts on a window boundary, and the
    time they take: each endpoint fits budget / weight calls in a window, so the busiest one
    needs ceil(calls x weight / budget) windows; its last calls go out at the start of the
    last window and are answered one round trip later. A lower bound: it ignores that some
    calls wait for others (a create for its sub-account's key list)."""
    windows = 0
    for name, n in calls.items():
        endpoint = ep.BY_NAME.get(name)
        if endpoint is None or n == 0:
            continue
        windows = max(windows, math.ceil(n * endpoint.weight / endpoint.budget))
    if windows == 0:
        return 0, 0.0
    return windows, (windows - 1) * window_s + latency_s
