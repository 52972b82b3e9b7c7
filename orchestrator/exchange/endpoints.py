"""The Binance endpoints the orchestrator uses, with their weights and rate-limit budgets.

One table, shared by the client (to pace its calls) and the emulator (to enforce the same
limits), so the two cannot disagree. Weights and budgets are Binance's published figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LimitKind = Literal["IP", "UID", "API"]

#: weight allowed per one-minute window, by limit kind. /sapi endpoints each have their own
#: budget of this size; /api endpoints share one per-IP request-weight budget.
BUDGET_PER_MINUTE: dict[LimitKind, int] = {"IP": 12_000, "UID": 180_000, "API": 6_000}

#: response header carrying the used weight of the current window, by limit kind.
USED_WEIGHT_HEADER: dict[LimitKind, str] = {
    "IP": "X-SAPI-USED-IP-WEIGHT-1M",
    "UID": "X-SAPI-USED-UID-WEIGHT-1M",
    "API": "X-MBX-USED-WEIGHT-1M",
}


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    weight: int
    limit: LimitKind
    mutating: bool
    signed: bool = True
    #: makes an API key: Binance allows about one per sub-account per second.
    creates_key: bool = False

    @property
    def budget(self) -> int:
        return BUDGET_PER_MINUTE[self.limit]

    @property
    def budget_key(self) -> str:
        """Endpoints sharing a budget share this key (all /api endpoints; each /sapi one alone)."""
        return "api" if self.limit == "API" else f"{self.method} {self.path}"

    @property
    def calls_per_minute(self) -> int:
        return self.budget // self.weight


SERVER_TIME = Endpoint("server_time", "GET", "/api/v3/time", 1, "API", False, signed=False)
CREATE_VIRTUAL_SUBACCOUNT = Endpoint(
    "create_virtual_subaccount", "POST", "/sapi/v1/sub-account/virtualSubAccount", 1, "IP", True
)
LIST_SUBACCOUNTS = Endpoint("list_subaccounts", "GET", "/sapi/v1/sub-account/list", 1, "IP", False)
CREATE_API_KEY = Endpoint(
    "create_api_key",
    "POST",
    "/sapi/v1/sub-account/subAccountApi",
    3000,
    "UID",
    True,
    creates_key=True,
)
CREATE_API_KEY_V2 = Endpoint(
    "create_api_key_v2",
    "POST",
    "/sapi/v2/sub-account/subAccountApi",
    3000,
    "UID",
    True,
    creates_key=True,
)
LIST_API_KEYS = Endpoint(
    "list_api_keys", "GET", "/sapi/v1/sub-account/subAccountApi", 3000, "UID", False
)
DELETE_API_KEY = Endpoint(
    "delete_api_key", "DELETE", "/sapi/v1/sub-account/subAccountApi", 3000, "UID", True
)
SET_PERMISSIONS = Endpoint(
    "set_permissions", "POST", "/sapi/v1/sub-account/subAccountApiPermission", 3000, "UID", True
)
ADD_IP_RESTRICTION = Endpoint(
    "add_ip_restriction",
    "POST",
    "/sapi/v2/sub-account/subAccountApi/ipRestriction",
    3000,
    "UID",
    True,
)
GET_IP_RESTRICTION = Endpoint(
    "get_ip_restriction",
    "GET",
    "/sapi/v1/sub-account/subAccountApi/ipRestriction",
    3000,
    "UID",
    False,
)
DELETE_IPS = Endpoint(
    "delete_ips",
    "DELETE",
    "/sapi/v1/sub-account/subAccountApi/ipRestriction/ipList",
    3000,
    "UID",
    True,
)
API_RESTRICTIONS = Endpoint(
    "api_restrictions", "GET", "/sapi/v1/account/apiRestrictions", 1, "IP", False
)

ALL: tuple[Endpoint, ...] = (
    SERVER_TIME,
    CREATE_VIRTUAL_SUBACCOUNT,
    LIST_SUBACCOUNTS,
    CREATE_API_KEY,
    CREATE_API_KEY_V2,
    LIST_API_KEYS,
    DELETE_API_KEY,
    SET_PERMISSIONS,
    ADD_IP_RESTRICTION,
    GET_IP_RESTRICTION,
    DELETE_IPS,
    API_RESTRICTIONS,
)
BY_NAME: dict[str, Endpoint] = {e.name: e for e in ALL}
BY_ROUTE: dict[tuple[str, str], Endpoint] = {(e.method, e.path): e for e in ALL}

#: endpoints Binance serves only to a calling (master) key with "Enable Spot & Margin Trading";
#: without it they answer -2015, like an invalid key.
NEEDS_MASTER_TRADING: frozenset[str] = frozenset(
    e.name
    for e in (
        CREATE_API_KEY,
        CREATE_API_KEY_V2,
        ADD_IP_RESTRICTION,
        DELETE_IPS,
        CREATE_VIRTUAL_SUBACCOUNT,
    )
)
