"""Keeping secrets out of logs: key masking and a structlog processor.

`redact_secrets` is meant to be installed globally (structlog.configure(processors=[...,
redact_secrets, ...])) so that even a careless log call cannot leak key material.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr
from structlog.typing import EventDict, WrappedLogger

REDACTED = "[REDACTED]"

#: normalised field names (lower case, no '-' or '_') whose values are secrets.
_SECRET_FIELDS = frozenset(
    {
        "signature",
        "secret",
        "secretkey",
        "apisecret",
        "privatekey",
        "privatekeypem",
        "password",
        "passphrase",
        "token",
    }
)
#: normalised field names whose values are API keys: shown masked, not hidden.
_KEY_FIELDS = frozenset({"apikey", "xmbxapikey", "subaccountapikey"})
_SIGNATURE_IN_TEXT = re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE)
_PEM_IN_TEXT = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL
)


def mask_key(api_key: str | None) -> str:
    """An API key shortened to first4…last4, enough to recognise it, not to use it."""
    if not api_key:
        return ""
    if len(api_key) <= 12:
        return "…" + api_key[-2:] if len(api_key) > 4 else "…"
    return f"{api_key[:4]}…{api_key[-4:]}"


def scrub_text(text: str) -> str:
    """Remove signatures in query strings and private-key PEM blocks from free text."""
    text = _SIGNATURE_IN_TEXT.sub(r"\1" + REDACTED, text)
    return _PEM_IN_TEXT.sub(REDACTED, text)


def _normalise(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _redact_value(name: str | None, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    field = _normalise(name) if isinstance(name, str) else ""
    if field in _SECRET_FIELDS and value is not None:
        return REDACTED
    if field in _KEY_FIELDS and isinstance(value, str):
        return mask_key(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(None, v) for v in value)
    if isinstance(value, str):
        return scrub_text(value)
    return value


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask every secret-looking value of the event, recursively."""
    return {key: _redact_value(key, value) for key, value in event_dict.items()}
