"""Typed exchange errors, mapped once in the client, each with a message a person can act on."""

from __future__ import annotations


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

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
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
