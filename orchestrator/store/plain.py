"""Guarding what goes into the journal and the audit log: plain JSON data, never a secret."""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretBytes, SecretStr

from orchestrator.store.errors import SecretInRecordError

#: field names that only ever hold secret material; a record carrying one is refused.
SECRET_FIELD_NAMES = frozenset(
    name.lower()
    for name in (
        "secret",
        "secretKey",
        "apiSecret",
        "api_secret",
        "secret_key",
        "privateKey",
        "private_key",
        "private_key_pem",
        "password",
        "token",
    )
)


def ensure_plain(value: Any, where: str = "value") -> Any:
    """Return `value` if it is plain JSON data without secrets, else raise SecretInRecordError.

    Refusing (rather than silently stripping) makes a leak a loud bug in tests instead of a
    quiet gap in the record. The message names the location, never the value.
    """
    if isinstance(value, SecretStr | SecretBytes):
        raise SecretInRecordError(f"{where} is a secret; secrets never go into records")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise SecretInRecordError(f"{where} is not a finite number")
        return value
    if isinstance(value, dict):
        return {_plain_key(k, where): ensure_plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [ensure_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise SecretInRecordError(
        f"{where} is a {type(value).__name__}; records take plain JSON data only"
    )


def _plain_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise SecretInRecordError(f"{where} has a non-string key ({type(key).__name__})")
    if key.lower() in SECRET_FIELD_NAMES:
        raise SecretInRecordError(f"{where}.{key} names secret material; leave it out")
    return key


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept, so hashes are stable."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
