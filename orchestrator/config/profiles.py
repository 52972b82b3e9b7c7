"""Permission names, the named profiles that bundle them, and which ones can trade."""

from __future__ import annotations

from orchestrator.domain.permissions import Permission

READ = "read"
WITHDRAWALS = "withdrawals"

PROFILES: dict[str, frozenset[Permission]] = {
    "read-only": frozenset(),
    "quant": frozenset({Permission.SPOT, Permission.FUTURES}),
    "copy-trade": frozenset({Permission.SPOT}),
}

#: names a plan may list under `permissions`; `read` is always on and may be written.
PERMISSION_NAMES: tuple[str, ...] = (READ, *(p.value for p in Permission))

#: permissions that move money one way or another; such keys need an IP whitelist.
TRADING: frozenset[Permission] = frozenset(Permission)

WITHDRAWALS_MESSAGE = (
    "`withdrawals` cannot be granted: Binance lets only a person enable withdrawals, in its "
    "web UI, and a bot key should never be able to move funds off the exchange"
)


def valid_profiles() -> str:
    return ", ".join(PROFILES)


def valid_permissions() -> str:
    return ", ".join(PERMISSION_NAMES)


def permissions_of(names: list[str]) -> frozenset[Permission]:
    """The API permissions for the names of a plan (`read` adds nothing: it is always on)."""
    return frozenset(Permission(name) for name in names if name != READ)


def describe(perms: frozenset[Permission]) -> str:
    ordered = [p.value for p in Permission if p in perms]
    return ", ".join([READ, *ordered])
