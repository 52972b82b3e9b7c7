"""Plain values exchanged between the client and the engine.

Immutable and cheap (the diff handles tens of thousands of them). Secrets only ever appear
as `SecretStr`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from orchestrator.domain.model import SubAccount
from orchestrator.domain.permissions import Permission, Permissions

__all__ = ["Permission", "Permissions", "SubAccount"]


#: Binance's request/response flag for each permission.
FLAG_OF: dict[Permission, str] = {
    Permission.SPOT: "canTrade",
    Permission.MARGIN_LOAN: "canMarginLoanRepay",
    Permission.FUTURES: "canFuturesTrade",
    Permission.UNIVERSAL_TRANSFER: "canUniversalTransfer",
    Permission.OPTIONS: "canVanillaOptions",
}

#: the field of GET /sapi/v1/account/apiRestrictions that shows each permission.
RESTRICTION_FIELD_OF: dict[Permission, str] = {
    Permission.SPOT: "enableSpotAndMarginTrading",
    Permission.MARGIN_LOAN: "enableMargin",
    Permission.FUTURES: "enableFutures",
    Permission.UNIVERSAL_TRANSFER: "permitsUniversalTransfer",
    Permission.OPTIONS: "enableVanillaOptions",
}


def permissions_from_flags(flags: dict) -> Permissions:
    """The permissions a response's can* flags grant (missing flags count as false)."""
    return frozenset(p for p, flag in FLAG_OF.items() if _truthy(flags.get(flag)))


def flags_from_permissions(perms: Permissions) -> dict[str, bool]:
    return {flag: p in perms for p, flag in FLAG_OF.items()}


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


@dataclass(frozen=True)
class ApiKey:
    """One row of GET /sapi/v1/sub-account/subAccountApi (no IP list there)."""

    email: str
    api_name: str
    api_key: str
    permissions: Permissions
    created_ms: int = 0


@dataclass(frozen=True)
class ApiKeyPage:
    total: int
    rows: tuple[ApiKey, ...]


@dataclass(frozen=True)
class IpRestriction:
    """A key's IP whitelist. `restricted` False means any IP may use the key."""

    api_key: str
    restricted: bool
    ips: tuple[str, ...]
    update_time: int = 0


@dataclass(frozen=True)
class CreatedKey:
    """The answer to a key creation. `secret` is set only for HMAC keys, and only this once."""

    email: str
    api_name: str
    api_key: str
    permissions: Permissions
    restricted: bool
    ips: tuple[str, ...]
    secret: SecretStr | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ApiRestrictions:
    """GET /sapi/v1/account/apiRestrictions: what the key that signed the call may do."""

    ip_restrict: bool
    create_time: int
    enable_reading: bool
    enable_withdrawals: bool
    enable_internal_transfer: bool
    permissions: Permissions
