"""One handler per endpoint: read the parameters as Binance names them, apply the account
rules, answer with Binance's response shape. Handlers run under the emulator's lock."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.emulator import errors
from orchestrator.emulator.accounts import (
    API_NAME,
    ED25519,
    FLAGS,
    HMAC,
    RSA,
    Accounts,
    ApiKey,
    check_ip_chars,
    parse_ips,
    random_token,
)
from orchestrator.emulator.signing import parse_public_key
from orchestrator.exchange.endpoints import NEEDS_MASTER_TRADING

#: v1 documents `publicKey` as an Ed25519 key; Binance publishes no code for another type,
#: so the emulator answers -1100 with this message.
V1_PUBLIC_KEY_TYPES = (
    "publicKey must be an Ed25519 public key; RSA keys can only be registered through "
    "POST /sapi/v2/sub-account/subAccountApi."
)
#: parameters that would grant withdrawals; none of the sub-account endpoints can (-9000).
WITHDRAW_PARAMS = ("canWithdraw", "enableWithdrawals", "canWithdrawal")
ASCII_DIGITS = re.compile(r"[0-9]{1,20}")


def wire_integer(name: str, raw: str, *, signed: bool = False) -> int:
    """`raw` as an integer: 1 to 20 ASCII digits, after one '-' if `signed`. Python's int()
    also takes other scripts' digits, superscripts and thousands of digits; Binance does not."""
    digits = raw[1:] if signed and raw.startswith("-") else raw
    if not ASCII_DIGITS.fullmatch(digits):
        raise errors.illegal(name, "^[0-9]{1,20}$")
    return int(raw)


#: what the v2 IP-restriction call does with the IPs it is given; Binance does not document
#: whether it adds them to the whitelist or replaces the whitelist with them.
IP_ADD, IP_REPLACE = "add", "replace"
IP_RESTRICTION_MODES = (IP_ADD, IP_REPLACE)


@dataclass
class Call:
    """What a handler sees of a request that passed authentication (and of the emulator's
    settings that change an endpoint's behaviour)."""

    params: dict[str, str]
    query_params: dict[str, str]
    now_ms: int
    caller: ApiKey
    ip_restriction_mode: str = IP_ADD
    #: seconds until the sub-account with this email may create a key again (0: now).
    creation_wait_s: Callable[[str], float] = lambda email: 0.0

    def required(self, name: str) -> str:
        value = self.params.get(name, "")
        if value == "":
            raise errors.missing(name)
        return value

    def optional(self, name: str) -> str | None:
        value = self.params.get(name, "")
        return value or None

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        value = wire_integer(name, raw, signed=True)
        if value < low or (high is not None and value > high):
            raise errors.invalid(name)
        return value

    def flag(self, name: str) -> bool | None:
        raw = self.optional(name)
        if raw is None:
            return None
        if raw.lower() not in ("true", "false"):
            raise errors.illegal(name, "true, false")
        return raw.lower() == "true"


Handler = Callable[[Accounts, Call], dict]


def server_time(accounts: Accounts, call: Call) -> dict:
    return {"serverTime": call.now_ms}


def ping(accounts: Accounts, call: Call) -> dict:
    return {}


def create_virtual_subaccount(accounts: Accounts, call: Call) -> dict:
    sub = accounts.create_virtual(call.required("subAccountString"), call.now_ms)
    return {"email": sub.email}


def list_subaccounts(accounts: Accounts, call: Call) -> dict:
    """Binance's defaults: page 1, limit 1 (max 200)."""
    email, freeze = call.optional("email"), call.flag("isFreeze")
    page, limit = call.integer("page", 1, 1), call.integer("limit", 1, 1, 200)
    subs = sorted(accounts.subs.values(), key=lambda s: s.sub_user_id)
    subs = [
        s
        for s in subs
        if (email is None or s.email == email) and (freeze is None or s.is_freeze == freeze)
    ]
    chosen = subs[(page - 1) * limit : page * limit]
    return {"subAccounts": [s.listing() for s in chosen]}


def create_api_key(accounts: Accounts, call: Call, key_types: tuple[str, ...] = (ED25519,)) -> dict:
    """v1: a `publicKey` must be Ed25519 (v2 passes RSA too in `key_types`)."""
    sub = accounts.sub(call.required("email"))
    wait_s = call.creation_wait_s(sub.email)
    if wait_s > 0:
        raise errors.TooManyRequests(wait_s)
    key = _new_key(call, key_types)
    _refuse_withdrawals(call)
    key.flags = {f: bool(call.flag(f)) for f in FLAGS}
    key.status, key.ip_list, key.third_party_name = _restriction(call)
    key.create_time = key.update_time = call.now_ms
    accounts.add_key(sub, key)
    answer = {"apiName": key.api_name, "apiKey": key.api_key}
    if key.secret is not None:  # an HMAC key; Ed25519 and RSA keys have no secret to hand out
        answer["secretKey"] = key.secret
    return {**answer, **key.flags, "status": key.status, "ipList": list(key.ip_list)}


def create_api_key_v2(accounts: Accounts, call: Call) -> dict:
    """v1 plus FIX API access for Ed25519 keys; `publicKey` (RSA or Ed25519) in the body only."""
    if "publicKey" in call.query_params:
        raise errors.bad_request(
            "publicKey must be placed in the request body; in the URL query string it is rejected."
        )
    fix_trading, fix_reading = call.flag("canFixApiTrading"), call.flag("canFixApiReading")
    if (fix_trading or fix_reading) and not _is_ed25519(call.optional("publicKey")):
        raise errors.unsupported("Unsupported operation.")
    answer = create_api_key(accounts, call, key_types=(ED25519, RSA))
    key = accounts.find_key(answer["apiKey"])
    if key is not None:
        key.fix_api_trading, key.fix_api_reading = bool(fix_trading), bool(fix_reading)
    return answer


def _is_ed25519(public_key: str | None) -> bool:
    return public_key is not None and parse_public_key(public_key)[0] == ED25519


def _new_key(call: Call, key_types: tuple[str, ...] = (ED25519,)) -> ApiKey:
    """A key with its material: from `publicKey` (query string or body) when one is sent, of
    one of `key_types` (v1: Ed25519 only), else HMAC."""
    api_name = call.required("apiName")
    if not API_NAME.fullmatch(api_name):
        raise errors.illegal("apiName", "^[A-Za-z0-9 _.-]{1,64}$")
    call.required("status")
    public_key = call.optional("publicKey")
    api_key = random_token(64)
    if public_key is None:
        return ApiKey(api_key, HMAC, api_name, secret=random_token(64))
    key_type, pem = parse_public_key(public_key)
    if key_type not in key_types:
        raise errors.bad_request(V1_PUBLIC_KEY_TYPES)
    return ApiKey(api_key, key_type, api_name, public_key=pem)


def _refuse_withdrawals(call: Call) -> None:
    for name in WITHDRAW_PARAMS:
        if call.flag(name):
            raise errors.unsupported(
                "Withdrawals cannot be enabled through the API; only in the web UI."
            )


def _restriction(call: Call) -> tuple[int, list[str], str | None]:
    """(status, ipList, thirdPartyName) from `status`, `ipAddress`, `thirdPartyName`.

    Status 1 is unrestricted (any IP list sent is ignored); 2 needs `ipAddress`; 3 needs
    `thirdPartyName` and keeps the IPs given, if any.
    """
    status = call.integer("status", 1, 1, 3)
    raw_ips = call.optional("ipAddress")
    if status == 1:
        return 1, [], None
    if status == 2 and raw_ips is None:
        raise errors.missing("ipAddress")
    third_party = call.required("thirdPartyName") if status == 3 else None
    ips = parse_ips(raw_ips or "")
    check_ip_chars(ips)
    return status, ips, third_party


def list_api_keys(accounts: Accounts, call: Call) -> dict:
    sub = accounts.sub(call.required("email"))
    wanted = call.optional("subAccountApiKey")
    page, size = call.integer("page", 1, 1), call.integer("size", 30, 1, 100)
    keys = [k for k in sub.keys.values() if wanted is None or k.api_key == wanted]
    chosen = keys[(page - 1) * size : page * size]
    return {"total": len(keys), "rows": [_row(sub.email, k) for k in chosen]}


def _row(email: str, key: ApiKey) -> dict:
    return {
        "email": email,
        "apiName": key.api_name,
        "apikey": key.api_key,
        **key.flags,
        "timestamp": key.create_time,
    }


def delete_api_key(accounts: Accounts, call: Call) -> dict:
    accounts.delete_key(call.required("email"), call.required("subAccountApiKey"))
    return {}


def set_permissions(accounts: Accounts, call: Call) -> dict:
    """Flags not sent keep their value; the answer's `timestamp` is the time of this update."""
    key = accounts.key_of(call.required("email"), call.required("subAccountApiKey"))
    _refuse_withdrawals(call)
    sent = {name: call.flag(name) for name in FLAGS}
    key.flags.update({name: value for name, value in sent.items() if value is not None})
    return {
        "apiName": key.api_name,
        "apikey": key.api_key,
        **key.flags,
        "timestamp": call.now_ms,
    }


def add_ip_restriction(accounts: Accounts, call: Call) -> dict:
    """v2: status 1 (or absent) lifts the restriction and clears the list; 2 restricts the key
    to its whitelist, with the IPs given added to it or replacing it (`ip_restriction_mode`).
    Status 3 (third party) is not accepted here. `ipList` is answered only when the call
    restricts the key and gives IPs."""
    key = accounts.key_of(call.required("email"), call.required("subAccountApiKey"))
    status = call.integer("status", 1, 1, 2)
    raw_ips = call.optional("ipAddress")
    if status == 1:
        key.ip_list = []
    elif raw_ips is not None:
        key.ip_list = _whitelist_after(key, parse_ips(raw_ips), call.ip_restriction_mode)
    key.status, key.third_party_name, key.update_time = status, None, call.now_ms
    answer: dict = {"status": str(status)}
    if status == 2 and raw_ips is not None:
        answer["ipList"] = list(key.ip_list)
    return {**answer, "updateTime": key.update_time, "apiKey": key.api_key}


def _whitelist_after(key: ApiKey, ips: list[str], mode: str) -> list[str]:
    whitelist = ips if mode == IP_REPLACE else list(dict.fromkeys(key.ip_list + ips))
    check_ip_chars(whitelist)
    return whitelist


def get_ip_restriction(accounts: Accounts, call: Call) -> dict:
    key = accounts.key_of(call.required("email"), call.required("subAccountApiKey"))
    return _restriction_view(key)


def delete_ips(accounts: Accounts, call: Call) -> dict:
    """Removes the listed IPs; a restricted key stays restricted even with an empty list."""
    key = accounts.key_of(call.required("email"), call.required("subAccountApiKey"))
    gone = set(parse_ips(call.required("ipAddress")))
    key.ip_list = [ip for ip in key.ip_list if ip not in gone]
    key.update_time = call.now_ms
    return _restriction_view(key)


def _restriction_view(key: ApiKey) -> dict:
    return {
        "ipRestrict": "true" if key.ip_restricted else "false",
        "ipList": list(key.ip_list),
        "updateTime": key.update_time,
        "apiKey": key.api_key,
    }


def api_restrictions(accounts: Accounts, call: Call) -> dict:
    """What the key that signed the call may do; withdrawals are never enabled."""
    key = call.caller
    flags = key.flags
    is_master = key is accounts.master
    return {
        "ipRestrict": key.ip_restricted,
        "createTime": key.create_time,
        "enableReading": True,
        "enableSpotAndMarginTrading": flags["canTrade"],
        "enableWithdrawals": key.can_withdraw,
        "enableInternalTransfer": is_master,
        "enableMargin": flags["canMarginLoanRepay"],
        "enableFutures": flags["canFuturesTrade"],
        "permitsUniversalTransfer": flags["canUniversalTransfer"],
        "enableVanillaOptions": flags["canVanillaOptions"],
        "enableFixApiTrade": key.fix_api_trading,
        "enableFixReadOnly": key.fix_api_reading,
        "enablePortfolioMarginTrading": False,
    }


#: mandatory parameters, checked (in this order, -1102) before anything else is looked at.
REQUIRED: dict[str, tuple[str, ...]] = {
    "create_virtual_subaccount": ("subAccountString",),
    "create_api_key": ("email", "apiName", "status"),
    "create_api_key_v2": ("email", "apiName", "status"),
    "list_api_keys": ("email",),
    "delete_api_key": ("email", "subAccountApiKey"),
    "set_permissions": ("email", "subAccountApiKey"),
    "add_ip_restriction": ("email", "subAccountApiKey"),
    "get_ip_restriction": ("email", "subAccountApiKey"),
    "delete_ips": ("email", "subAccountApiKey", "ipAddress"),
}


def run(name: str, accounts: Accounts, call: Call) -> dict:
    if name in NEEDS_MASTER_TRADING and not call.caller.flags.get("canTrade"):
        raise errors.unauthorized()
    for param in REQUIRED.get(name, ()):
        call.required(param)
    return HANDLERS[name](accounts, call)


HANDLERS: dict[str, Handler] = {
    "server_time": server_time,
    "ping": ping,
    "create_virtual_subaccount": create_virtual_subaccount,
    "list_subaccounts": list_subaccounts,
    "create_api_key": create_api_key,
    "create_api_key_v2": create_api_key_v2,
    "list_api_keys": list_api_keys,
    "delete_api_key": delete_api_key,
    "set_permissions": set_permissions,
    "add_ip_restriction": add_ip_restriction,
    "get_ip_restriction": get_ip_restriction,
    "delete_ips": delete_ips,
    "api_restrictions": api_restrictions,
}

#: endpoints only the master key may call (a sub-account key gets -2015).
MASTER_ONLY = frozenset(HANDLERS) - {"server_time", "ping", "api_restrictions"}
