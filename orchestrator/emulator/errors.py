"""Binance error answers: `{"code": -NNNN, "msg": "..."}` with the HTTP status Binance uses.

Message wordings follow Binance's published error-code list so that clients which match on
them (few do; they should match on `code`) see the same text.
"""

from __future__ import annotations


class BinanceError(Exception):
    """A refusal the emulator answers with Binance's error body."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def missing(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str, legal: str) -> BinanceError:
    return BinanceError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def invalid(name: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")


def bad_request(msg: str) -> BinanceError:
    """-1100 with a message of our own, for values Binance refuses without a fixed wording."""
    return BinanceError(-1100, msg)


def unsupported(msg: str) -> BinanceError:
    return BinanceError(-9000, msg)


def not_a_sub_account() -> BinanceError:
    """Binance's answer, on every sub-account endpoint, to an email that is not a sub-account
    of the calling master."""
    return BinanceError(-9000, "This two users are not in parent-child relation.")


def bad_key_format() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", status=401)


def unauthorized() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)


def bad_signature() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.")


def outside_recv_window() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def ahead_of_server() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def recv_window_too_large() -> BinanceError:
    return BinanceError(-1131, "recvWindow must be less than 60000")


def too_many_requests(endpoint_path: str, budget: int) -> BinanceError:
    """429 / -1003. /sapi endpoints answer with their own short wording (the one Binance's
    /sapi answers carry) and never escalate to 418 IP bans; /api endpoints with the spot API's."""
    if endpoint_path.startswith("/sapi/"):
        return BinanceError(-1003, "Too many requests; current request has limited.", status=429)
    return BinanceError(
        -1003,
        f"Too much request weight used; current limit is {budget} request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
        status=429,
    )


class TooManyRequests(BinanceError):
    """429 / -1003, answered with Retry-After: `retry_after_s`, else the end of the budget's
    window."""

    def __init__(self, retry_after_s: float | None = None) -> None:
        super().__init__(-1003, "Too many requests.", status=429)
        self.retry_after_s = retry_after_s


def not_found(path: str) -> BinanceError:
    """Binance answers unknown paths with a bare 404; the body here is only a courtesy."""
    return BinanceError(-1000, f"Path not found: {path}", status=404)


#: the two 5xx answers Binance gives when the backend failed (execution status unknown).
SERVER_ERRORS: tuple[BinanceError, ...] = (
    BinanceError(-1000, "An unknown error occurred while processing the request.", status=500),
    BinanceError(
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; "
        "execution status unknown.",
        status=503,
    ),
)
