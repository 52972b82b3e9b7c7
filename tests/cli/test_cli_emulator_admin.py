"""The admin routes of `emulator serve`: documented in the README, and a call that does not
fit gets a 400 saying what the route takes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from orchestrator.emulator.admin import ROUTES
from orchestrator.emulator.core import ADMIN_TOKEN_HEADER, Emulator, EmuRequest
from tests.cli.conftest import admin_headers

README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "t0ken"


def admin_call(emulator: Emulator, method: str, path: str, body: bytes = b"", query: str = ""):
    request = EmuRequest(
        method, path, raw_query=query, body=body, headers={ADMIN_TOKEN_HEADER.lower(): TOKEN}
    )
    answer = emulator.handle(request)
    return answer.status, json.loads(answer.body or b"{}")


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(admin_token=TOKEN)


def test_readme_documents_every_admin_route_its_method_and_body():
    readme = README.read_text()
    assert ADMIN_TOKEN_HEADER in readme
    for route in ROUTES:
        row = next((ln for ln in readme.splitlines() if f"`{route.path}`" in ln), None)
        assert row is not None, f"README does not document {route.path}"
        assert all(method in row for method in route.methods), row
        assert route.body.replace("|", r"\|") in row, row


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "status", "says"),
    [
        ("POST", "/_emulator/subaccount", b"", "email=a@example.com", 400, "query string"),
        ("POST", "/_emulator/subaccount", b"", "", 400, "the body is empty"),
        ("POST", "/_emulator/subaccount", b"{}", "", 400, "give either 'email' or 'emails'"),
        ("POST", "/_emulator/subaccount", b'{"emails": "a@example.com"}', "", 400, "a list"),
        ("POST", "/_emulator/subaccount", b'{"email": 5}', "", 400, "must be a string"),
        ("POST", "/_emulator/subaccount", b"email=a@example.com", "", 400, "not JSON"),
        ("POST", "/_emulator/subaccount", b'["a@example.com"]', "", 400, "a JSON object"),
        ("GET", "/_emulator/subaccount", b'{"email": "a@example.com"}', "", 405, "POST"),
        ("POST", "/_emulator/advance", b"{}", "", 400, "missing 'seconds'"),
        ("POST", "/_emulator/advance", b'{"seconds": "5"}', "", 400, "seconds must be a number"),
        ("POST", "/_emulator/inject", b'{"kind": "meteor"}', "", 400, "unknown fault kind"),
        ("GET", "/_emulator/stats", b"", "reset=1", 400, "query string"),
        ("POST", "/_emulator/nothing", b"{}", "", 404, "/_emulator/subaccount"),
    ],
)
def test_a_call_that_does_not_fit_says_what_the_route_takes(
    emulator, method, path, body, query, status, says
):
    answered, data = admin_call(emulator, method, path, body, query)
    assert answered == status, data
    assert says in data["msg"]
    route = next((r for r in ROUTES if r.path == path), None)
    if route is not None:
        assert route.usage() in data["msg"]
    assert emulator.accounts.subs == {}  # nothing half done


def test_admin_calls_that_fit_still_work(emulator):
    body = json.dumps({"emails": ["a@example.com", "b@example.com"]}).encode()
    assert admin_call(emulator, "POST", "/_emulator/subaccount", body)[0] == 200
    assert admin_call(emulator, "POST", "/_emulator/subaccount", b'{"email": "c@x.com"}')[0] == 200
    assert sorted(emulator.accounts.subs) == ["a@example.com", "b@example.com", "c@x.com"]
    assert admin_call(emulator, "POST", "/_emulator/advance", b'{"seconds": 1}')[0] == 200
    assert admin_call(emulator, "GET", "/_emulator/stats")[0] == 200


def test_emulator_serve_answers_a_query_string_call_with_what_it_expects(server):
    base_url, announced = server
    refused = httpx.post(
        f"{base_url}/_emulator/subaccount",
        params={"email": "ui@example.com"},
        headers=admin_headers(announced),
    )
    assert refused.status_code == 400
    message = refused.json()["msg"]
    assert "query string" in message and '{"email": "a@example.com"}' in message
    assert "'emails'" not in message.split(".")[0]
