"""Binance response bodies -> models.

Tolerant of the variations Binance's answers are known to take (`rows` or `list`, `apikey`
or `apiKey`, `ipRestrict` as "true"/"false" or a bool, a missing `ipList`). A body of the
wrong shape raises `ShapeError`, which the client turns into MalformedResponse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr

from orchestrator.exchange.models import (
    FLAG_OF,
    RESTRICTION_FIELD_OF,
    ApiKey,
    ApiKeyPage,
    ApiRestrictions,
    CreatedKey,
    IpRestriction,
    Permissions,
    SubAccount,
    permissions_from_flags,
)

STATUS_UNRESTRICTED = 1
STATUS_TRUSTED_IPS = 2


class ShapeError(ValueError):
    """The body is valid JSON but not what the endpoint returns."""


def server_time(body: Any) -> int:
    return _int(_object(body), "serverTime")


def virtual_subaccount_email(body: Any) -> str:
    return _str(_object(body), "email")


def subaccounts(body: Any) -> list[SubAccount]:
    rows = _list(_object(body), "subAccounts")
    return [
        SubAccount(
            email=_str(row, "email"),
            sub_user_id=_optional_int(row.get("subUserId")),
            is_freeze=_bool(row.get("isFreeze")),
            create_time=_optional_int(row.get("createTime")) or 0,
            is_managed=_bool(row.get("isManagedSubAccount")),
            is_asset_management=_bool(row.get("isAssetManagementSubAccount")),
        )
        for row in map(_as_object, rows)
    ]


def api_key_page(body: Any, email: str) -> ApiKeyPage:
    obj = _object(body)
    key = "rows" if "rows" in obj else "list"
    rows = _list(obj, key) if key in obj else []
    keys = tuple(_api_key_row(_as_object(row), email) for row in rows)
    total = _optional_int(obj.get("total"))
    return ApiKeyPage(total=len(keys) if total is None else total, rows=keys)


def created_key(body: Any, email: str, asked: Permissions, asked_ips: Sequence[str]) -> CreatedKey:
    """A create's answer. Missing permission flags or ipList fall back to what was asked."""
    obj = _object(body)
    restricted = _restricted(obj)
    if restricted is None:
        restricted = bool(asked_ips)
    ips = _ip_list(obj.get("ipList")) if "ipList" in obj else tuple(asked_ips)
    has_flags = any(flag in obj for flag in FLAG_OF.values())
    secret = obj.get("secretKey")
    return CreatedKey(
        email=email,
        api_name=_str(obj, "apiName"),
        api_key=_api_key_of(obj),
        permissions=permissions_from_flags(obj) if has_flags else asked,
        restricted=restricted,
        ips=ips if restricted else (),
        secret=SecretStr(secret) if isinstance(secret, str) and secret else None,
    )


def ip_restriction(body: Any, api_key: str) -> IpRestriction:
    """The v2 POST answer ({status, ipList}) or the GET/DELETE one ({ipRestrict, ipList})."""
    obj = _object(body)
    restricted = _restricted(obj)
    if restricted is None:
        raise ShapeError("neither 'ipRestrict' nor 'status' in the answer")
    return IpRestriction(
        api_key=_str_or(obj, "apiKey", api_key),
        restricted=restricted,
        ips=_ip_list(obj.get("ipList")),
        update_time=_optional_int(obj.get("updateTime")) or 0,
    )


def api_restrictions(body: Any) -> ApiRestrictions:
    obj = _object(body)
    if "enableReading" not in obj:
        raise ShapeError("'enableReading' missing")
    return ApiRestrictions(
        ip_restrict=_bool(obj.get("ipRestrict")),
        create_time=_optional_int(obj.get("createTime")) or 0,
        enable_reading=_bool(obj.get("enableReading")),
        enable_withdrawals=_bool(obj.get("enableWithdrawals")),
        enable_internal_transfer=_bool(obj.get("enableInternalTransfer")),
        permissions=frozenset(p for p, f in RESTRICTION_FIELD_OF.items() if _bool(obj.get(f))),
    )


def expect_object(body: Any) -> dict:
    return _object(body)


def _api_key_row(row: dict, email: str) -> ApiKey:
    return ApiKey(
        email=_str_or(row, "email", email),
        api_name=_str(row, "apiName"),
        api_key=_api_key_of(row),
        permissions=permissions_from_flags(row),
        created_ms=_optional_int(row.get("timestamp") or row.get("createTime")) or 0,
    )


def _api_key_of(obj: dict) -> str:
    for name in ("apiKey", "apikey"):
        if isinstance(obj.get(name), str) and obj[name]:
            return obj[name]
    raise ShapeError("'apiKey' missing")


def _restricted(obj: dict) -> bool | None:
    """Whether the key is IP-restricted, None when the answer says neither way."""
    if "ipRestrict" in obj:
        return _bool(obj["ipRestrict"])
    if "status" in obj:
        return _optional_int(obj["status"]) == STATUS_TRUSTED_IPS
    return None


def _ip_list(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(ip.strip() for ip in value.split(",") if ip.strip())
    if isinstance(value, list) and all(isinstance(ip, str) for ip in value):
        return tuple(value)
    raise ShapeError("'ipList' is neither a list of strings nor a comma list")


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise ShapeError(f"expected a JSON object, got {type(body).__name__}")
    return body


def _as_object(row: Any) -> dict:
    if not isinstance(row, dict):
        raise ShapeError(f"expected rows of JSON objects, got {type(row).__name__}")
    return row


def _list(obj: dict, name: str) -> list:
    value = obj.get(name)
    if not isinstance(value, list):
        raise ShapeError(f"'{name}' missing or not a list")
    return value


def _str_or(obj: dict, name: str, fallback: str) -> str:
    """The string at `name`, or `fallback` when it is missing or not a string."""
    value = obj.get(name)
    return value if isinstance(value, str) else fallback


def _str(obj: dict, name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ShapeError(f"'{name}' missing or not a string")
    return value


def _int(obj: dict, name: str) -> int:
    value = _optional_int(obj.get(name))
    if value is None:
        raise ShapeError(f"'{name}' missing or not an integer")
    return value


def _optional_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
