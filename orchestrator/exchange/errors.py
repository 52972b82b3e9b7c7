"""Typed exchange errors, mapped once in the client, each with a message a person can act on.

One flat hierarchy under `ExchangeError`, and one table, `ERROR_KINDS`, from each error code
Binance answers with to the type raised for it and the hint shown with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from orchestrator.exchange.endpoints import NEEDS_MASTER_TRADING


class ExchangeError(Exception):
    """Base of every error raised by the exchange client.

    `code` is Binance's error code when the service sent one, `endpoint` the endpoint name,
    `hint` what the user can do about it. Never carries a secret or a signature.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        endpoint: str | None = None,
        http_status: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.endpoint = endpoint
        self.http_status = http_status
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = f"{self.endpoint}: " if self.endpoint else ""
        code = f" (Binance code {self.code})" if self.code is not None else ""
        hint = f" Hint: {self.hint}" if self.hint else ""
        return f"{where}{self.message}{code}.{hint}"


class ApiError(ExchangeError):
    """Binance refused the request with an error code not covered by a narrower type."""


class BadRequest(ApiError):
    """-1100/-1102 and friends: a parameter is missing or malformed."""


class Unsupported(ApiError):
    """-9000: the operation is not supported for this account or key."""


class AuthError(ApiError):
    """The request was not authorised; retrying will not help."""


class InvalidSignature(AuthError):
    """-1022: wrong secret, or the signature was made with the wrong key type."""


class InvalidApiKeyFormat(AuthError):
    """-2014: the API key header is malformed."""


class Unauthorized(AuthError):
    """-2015: invalid API key, caller IP not whitelisted, or missing permission."""


class TimestampOutOfWindow(ApiError):
    """-1021: the request timestamp is outside recvWindow (clock skew)."""


class RateLimited(ExchangeError):
    """HTTP 429 / -1003: over the endpoint's budget. `retry_after` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class IpBanned(RateLimited):
    """HTTP 418: the IP was banned for continuing after 429s."""


class ServerError(ExchangeError):
    """A read failed with 5xx after all retries."""


class NetworkError(ExchangeError):
    """The service could not be reached (connection refused, DNS, timeout before sending)."""


class AmbiguousOutcome(ExchangeError):
    """A write got a 5xx, a timeout or a reset after the request was sent.

    Binance may or may not have carried it out. Never retry blindly: reconcile by reading
    live state (for keys: list the sub-account's keys and look for the apiName).
    """


class MalformedResponse(ExchangeError):
    """The service answered with a body the client cannot understand."""


class CredentialsError(ExchangeError):
    """Master credentials are missing or unusable (environment variables, key file)."""


class MalformedWriteResponse(MalformedResponse, AmbiguousOutcome):
    """A write was accepted (2xx) but its answer cannot be read.

    The change most likely happened, but what it made (a key id, a secret) is unknown, so it
    is handled like any ambiguous outcome: reconcile by reading live state.
    """


class ConnectFailed(NetworkError):
    """The connection could not be opened, so nothing was sent: safe to retry, even a write."""


HINT_RATE_LIMITED = "calls on this endpoint were paused until Retry-After"
HINT_IP_BANNED = "wait until the ban ends (Retry-After) before calling again"
HINT_TIMESTAMP = (
    "the local clock is off even after resyncing with Binance's server time: sync the system "
    "clock (NTP) or raise recv_window_ms (max 60000)"
)
HINT_INVALID_SIGNATURE = (
    "wrong secret, or the key is Ed25519/RSA and was signed as HMAC or vice versa: check "
    "BINANCE_API_SECRET / BINANCE_PRIVATE_KEY_FILE belong to BINANCE_API_KEY"
)
HINT_BAD_REQUEST = (
    "Binance refused a parameter of the call (its message names it): check the value the plan "
    "gives it, such as an email, an apiName or an IP address"
)
HINT_KEY_FORMAT = "the API key is malformed: check BINANCE_API_KEY (no quotes, no spaces)"
HINT_UNAUTHORIZED = (
    "the master key is invalid, the caller's IP is not in the master key's whitelist, or the "
    "key lacks the permission for this action — enable 'Enable Reading' and sub-account key "
    "management in the master account"
)
HINT_UNAUTHORIZED_OTHER_KEY = (
    "the key used for this call is invalid or deleted, or the caller's IP is not in its whitelist"
)
HINT_MASTER_TRADING = (
    "Binance allows this call only to a master key with 'Enable Spot & Margin Trading': "
    "enable 'Enable Spot & Margin Trading' on the master API key (API Management in Binance's "
    "web UI); if it is enabled, the key is invalid or the caller's IP is not in its whitelist"
)
HINT_UNSUPPORTED = (
    "Binance does not allow this for this account or key; for a sub-account, check that its "
    "email belongs to a sub-account of this master account"
)


@dataclass(frozen=True)
class ErrorKind:
    """What one error code stands for: the type raised for it and the hint shown with it.

    `other_key_hint`, when set, replaces `hint` for a call signed with a key other than the
    master key (the master's hint would blame the wrong key).
    """

    type: type[ExchangeError]
    hint: str | None
    other_key_hint: str | None = None

    def hint_for(self, *, master_key: bool) -> str | None:
        if not master_key and self.other_key_hint is not None:
            return self.other_key_hint
        return self.hint


_BAD_REQUEST = ErrorKind(BadRequest, HINT_BAD_REQUEST)
_RATE_LIMITED = ErrorKind(RateLimited, HINT_RATE_LIMITED)

#: Binance's error codes (negative) -> their kind. An HTTP status (positive) stands for the
#: answers that carry no error body of their own: 429 and 418.
ERROR_KINDS: Mapping[int, ErrorKind] = MappingProxyType(
    {
        429: _RATE_LIMITED,
        418: ErrorKind(IpBanned, HINT_IP_BANNED),
        -1003: _RATE_LIMITED,
        -1021: ErrorKind(TimestampOutOfWindow, HINT_TIMESTAMP),
        -1022: ErrorKind(InvalidSignature, HINT_INVALID_SIGNATURE),
        -1100: _BAD_REQUEST,  # illegal characters in a parameter
        -1101: _BAD_REQUEST,  # too many parameters
        -1102: _BAD_REQUEST,  # a mandatory parameter missing, empty or malformed
        -1104: _BAD_REQUEST,  # not all parameters were read
        -1105: _BAD_REQUEST,  # a parameter was empty
        -1106: _BAD_REQUEST,  # a parameter was sent that is not required
        -2014: ErrorKind(InvalidApiKeyFormat, HINT_KEY_FORMAT),
        -2015: ErrorKind(Unauthorized, HINT_UNAUTHORIZED, HINT_UNAUTHORIZED_OTHER_KEY),
        -9000: ErrorKind(Unsupported, HINT_UNSUPPORTED),
    }
)

#: (code, endpoint name) -> its kind, where one endpoint's answer means more than the code's.
ENDPOINT_ERROR_KINDS: Mapping[tuple[int, str], ErrorKind] = MappingProxyType(
    {
        (-2015, name): ErrorKind(Unauthorized, HINT_MASTER_TRADING, HINT_UNAUTHORIZED_OTHER_KEY)
        for name in NEEDS_MASTER_TRADING
    }
)

#: a code the table does not list: a plain `ApiError` with Binance's message and no hint.
UNLISTED_CODE = ErrorKind(ApiError, None)


def error_kind(code: int, endpoint: str | None = None) -> ErrorKind:
    """The kind `code` stands for (a Binance error code, or HTTP 429/418 without one), as
    `endpoint` answered it when that endpoint gives the code a meaning of its own."""
    if endpoint is not None and (code, endpoint) in ENDPOINT_ERROR_KINDS:
        return ENDPOINT_ERROR_KINDS[(code, endpoint)]
    return ERROR_KINDS.get(code, UNLISTED_CODE)
