"""The admin routes of `emulator serve` (`/_emulator/...`): what each takes, and a clear 400
for a call that does not fit, saying what is expected.

Admin routes exist only when the emulator has an admin token (`emulator serve` prints a new
one at every start); every call sends it in the X-Emulator-Admin-Token header. Parameters go
in a JSON object body, never in the query string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AdminRoute:
    path: str
    methods: tuple[str, ...]
    body: str  # the JSON body it takes, as the README documents it; "" for none
    does: str

    def usage(self) -> str:
        takes = f"the JSON body {self.body}" if self.body else "no body"
        return f"{' or '.join(self.methods)} {self.path} takes {takes}"


ROUTES = (
    AdminRoute(
        "/_emulator/subaccount",
        ("POST",),
        '{"email": "a@example.com"} or {"emails": ["a@example.com", ...]}, '
        'and "master": NAME (optional, default the first master account)',
        "add sub-accounts the way Binance's web UI makes them (idempotent)",
    ),
    AdminRoute(
        "/_emulator/master",
        ("POST",),
        '{"name": NAME}',
        "add a master account with its own sub-accounts and rate-limit budgets; answers "
        "its apiKey and secretKey",
    ),
    AdminRoute(
        "/_emulator/inject",
        ("POST",),
        '{"kind": KIND, "endpoint": NAME (optional), "count": N (optional, default 1)}',
        "queue faults for the next matching requests",
    ),
    AdminRoute(
        "/_emulator/advance",
        ("POST",),
        '{"seconds": N}',
        "move the emulator's clock forward (server time and rate-limit windows)",
    ),
    AdminRoute(
        "/_emulator/stats",
        ("GET", "POST"),
        "",
        "requests per endpoint and status; POST also resets the counts",
    ),
)
BY_PATH = {route.path: route for route in ROUTES}


class AdminRequestError(Exception):
    """An admin call that cannot be served: HTTP status, Binance-style code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def admin_request(method: str, path: str, raw_query: str, body: bytes) -> tuple[AdminRoute, dict]:
    """The route called and its JSON body, or AdminRequestError saying what is expected."""
    route = BY_PATH.get(path)
    if route is None:
        known = ", ".join(r.path for r in ROUTES)
        raise AdminRequestError(404, -1000, f"no admin route {path}; the admin routes: {known}")
    if method.upper() not in route.methods:
        raise AdminRequestError(405, -1000, f"wrong method {method}: {route.usage()}")
    if raw_query:
        raise bad_request(route, "parameters in the query string are not read")
    if not route.body:
        return route, {}
    return route, _json_object(route, body)


def bad_request(route: AdminRoute, problem: str, code: int = -1100) -> AdminRequestError:
    return AdminRequestError(400, code, f"bad admin request: {problem}. {route.usage()}.")


def subaccount_emails(route: AdminRoute, data: dict) -> list[str]:
    """The emails a /_emulator/subaccount body names."""
    if ("email" in data) == ("emails" in data):
        raise bad_request(route, "give either 'email' or 'emails'", -1102)
    emails = [data["email"]] if "email" in data else data["emails"]
    if not isinstance(emails, list) or not all(isinstance(e, str) and e for e in emails):
        raise bad_request(route, "'email' must be a string, 'emails' a list of strings")
    return emails


def subaccount_master(route: AdminRoute, data: dict) -> str | None:
    """The master account a /_emulator/subaccount body names, if any."""
    master = data.get("master")
    if master is not None and not (isinstance(master, str) and master):
        raise bad_request(route, "'master' must be a master account's name")
    return master


def master_name(route: AdminRoute, data: dict) -> str:
    """The name a /_emulator/master body gives the new master account."""
    name = data.get("name")
    if not (isinstance(name, str) and name):
        raise bad_request(route, "give 'name', a string", -1102)
    return name


def _json_object(route: AdminRoute, body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise bad_request(route, "the body is empty", -1102)
    try:
        data = json.loads(body)
    except RecursionError:
        raise bad_request(route, "the body nests too deeply") from None
    except ValueError:  # not JSON, or not UTF-8
        raise bad_request(route, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise bad_request(route, "the body must be a JSON object")
    return data
