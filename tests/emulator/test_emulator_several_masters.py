"""Several master accounts in one emulator: each owns its sub-accounts and its keys, and has
its own UID rate-limit budgets (Binance's /sapi limits are per account UID)."""

from __future__ import annotations

import json

import pytest
from emulator_kit import (
    LIST_SUBS,
    SUBACCOUNT_API,
    VIRTUAL,
    HmacSigner,
    SignedClient,
    create_hmac_key,
)

from orchestrator.emulator.core import ADMIN_TOKEN_HEADER, Emulator, EmuRequest


def client_of(emulator: Emulator, master) -> SignedClient:
    return SignedClient(emulator, HmacSigner(master.api_key, master.secret))


@pytest.fixture
def second(emulator) -> SignedClient:
    return client_of(emulator, emulator.add_master("fund2"))


def emails(client: SignedClient) -> list[str]:
    return [s["email"] for s in client.ok("GET", LIST_SUBS, {"limit": 200})["subAccounts"]]


def test_each_master_sees_only_its_own_subaccounts_and_keys(emulator, master, second):
    emulator.add_subaccount("a@example.com")
    emulator.add_subaccount("b@example.com", master="fund2")
    mine = master.ok("POST", VIRTUAL, {"subAccountString": "one"})["email"]
    theirs = second.ok("POST", VIRTUAL, {"subAccountString": "two"})["email"]
    assert sorted(emails(master)) == sorted(["a@example.com", mine])
    assert sorted(emails(second)) == sorted(["b@example.com", theirs])
    create_hmac_key(second, "b@example.com", "fundbot")
    # a master cannot list or create keys in another master's sub-account
    refused = master.call("GET", SUBACCOUNT_API, {"email": "b@example.com"})
    assert refused.status_code == 400, refused.text
    rows = second.ok("GET", SUBACCOUNT_API, {"email": "b@example.com"})["rows"]
    assert [r["apiName"] for r in rows] == ["fundbot"]


def test_uid_budgets_are_per_master_account(emulator, master, second, clock):
    emulator.add_subaccount("a@example.com")
    emulator.add_subaccount("b@example.com", master="fund2")
    clock.t = 1_699_999_980.0 + 40
    for _ in range(60):
        assert master.call("GET", SUBACCOUNT_API, {"email": "a@example.com"}).status_code == 200
    assert master.call("GET", SUBACCOUNT_API, {"email": "a@example.com"}).status_code == 429
    answer = second.call("GET", SUBACCOUNT_API, {"email": "b@example.com"})
    assert answer.status_code == 200
    assert answer.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "3000"


def test_an_email_belongs_to_one_master(emulator):
    emulator.add_master("fund2")
    emulator.add_subaccount("a@example.com")
    with pytest.raises(ValueError, match="another master"):
        emulator.add_subaccount("a@example.com", master="fund2")
    with pytest.raises(ValueError, match="no master account named"):
        emulator.add_subaccount("c@example.com", master="nobody")


def test_add_master_is_idempotent_and_checks_the_name(emulator):
    assert emulator.add_master("fund2") is emulator.add_master("fund2")
    assert emulator.add_master("fund2").api_key != emulator.master.api_key
    with pytest.raises(ValueError, match="master account names"):
        emulator.add_master("no spaces")


def test_further_masters_and_their_keys_survive_a_restart(tmp_path, clock):
    path = tmp_path / "sandbox.json"
    first = Emulator(path, clock=clock)
    key = first.add_master("fund2")
    first.add_subaccount("b@example.com", master="fund2")
    made = create_hmac_key(client_of(first, key), "b@example.com", "fundbot")  # journaled

    again = Emulator(path, clock=clock)
    assert again.add_master("fund2").api_key == key.api_key
    rows = client_of(again, key).ok("GET", SUBACCOUNT_API, {"email": "b@example.com"})["rows"]
    assert [r["apikey"] for r in rows] == [made["apiKey"]]
    assert emails(client_of(again, again.master)) == []


def test_admin_routes_make_a_master_and_subaccounts_under_it(clock):
    emulator = Emulator(None, clock=clock, admin_token="t0k")

    def admin(path: str, body: dict):
        request = EmuRequest(
            "POST", path, body=json.dumps(body).encode(), headers={ADMIN_TOKEN_HEADER: "t0k"}
        )
        return emulator.handle(request)

    made = admin("/_emulator/master", {"name": "fund2"})
    assert made.status == 200
    credentials = made.json()
    assert admin("/_emulator/subaccount", {"email": "b@example.com", "master": "fund2"}).status == (
        200
    )
    assert admin("/_emulator/subaccount", {"email": "c@example.com", "master": "x"}).status == 400
    client = SignedClient(emulator, HmacSigner(credentials["apiKey"], credentials["secretKey"]))
    assert emails(client) == ["b@example.com"]
    assert emails(client_of(emulator, emulator.master)) == []
