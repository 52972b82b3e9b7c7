"""The v2 create, and what the master key's own permissions allow it to call."""

from __future__ import annotations

import pytest
from emulator_kit import (
    IP_LIST,
    IP_V1,
    IP_V2,
    RESTRICTIONS,
    SUBACCOUNT_API,
    VIRTUAL,
    AsymmetricSigner,
    create_hmac_key,
    new_ed25519,
    new_rsa,
)

from orchestrator.emulator.master import master_permissions, without_trading

V2 = "/sapi/v2/sub-account/subAccountApi"
REFUSED = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}


def _v2(sub_email: str, **params) -> dict:
    return {"email": sub_email, "apiName": "fix", "status": 1, **params}


def test_v2_creates_an_hmac_key_like_v1(master, sub_email):
    created = master.ok("POST", V2, body=_v2(sub_email, canTrade="true"))
    assert len(created["secretKey"]) == 64 and created["canTrade"] is True
    listed = master.ok("GET", SUBACCOUNT_API, {"email": sub_email})["rows"]
    assert [k["apikey"] for k in listed] == [created["apiKey"]]


@pytest.mark.parametrize("new_key", [new_ed25519, new_rsa], ids=["ed25519", "rsa"])
def test_v2_registers_a_public_key_from_the_body(master, sub_email, new_key):
    private_key, pem = new_key()
    created = master.ok("POST", V2, body=_v2(sub_email, publicKey=pem))
    assert "secretKey" not in created
    own = master.with_signer(AsymmetricSigner(created["apiKey"], private_key))
    assert own.ok("GET", RESTRICTIONS)["enableFixApiTrade"] is False


def test_v2_refuses_a_public_key_in_the_query_string(master, sub_email):
    _, pem = new_ed25519()
    answer = master.call("POST", V2, {"publicKey": pem}, body=_v2(sub_email))
    assert answer.status_code == 400
    assert "publicKey must be placed in the request body" in answer.json()["msg"]
    assert master.ok("GET", SUBACCOUNT_API, {"email": sub_email})["total"] == 0


def test_fix_api_permissions_need_an_ed25519_key(master, sub_email):
    private_key, pem = new_ed25519()
    fix = {"canFixApiTrading": "true", "canFixApiReading": "true"}
    created = master.ok("POST", V2, body=_v2(sub_email, publicKey=pem, **fix))
    own = master.with_signer(AsymmetricSigner(created["apiKey"], private_key))
    seen = own.ok("GET", RESTRICTIONS)
    assert seen["enableFixApiTrade"] is True and seen["enableFixReadOnly"] is True
    _, rsa_pem = new_rsa()
    for refused in (_v2(sub_email, apiName="h", **fix), _v2(sub_email, publicKey=rsa_pem, **fix)):
        answer = master.call("POST", V2, body=refused)
        assert answer.status_code == 400 and answer.json()["code"] == -9000
    assert master.ok("GET", SUBACCOUNT_API, {"email": sub_email})["total"] == 1


def test_master_without_trading_is_refused_where_binance_needs_it(emulator, master, sub_email):
    key = create_hmac_key(master, sub_email)
    without_trading(emulator.master)
    refused = [
        ("POST", SUBACCOUNT_API, {"email": sub_email, "apiName": "b", "status": 1}),
        ("POST", V2, {"email": sub_email, "apiName": "b", "status": 1}),
        ("POST", VIRTUAL, {"subAccountString": "more"}),
        (
            "POST",
            IP_V2,
            {
                "email": sub_email,
                "subAccountApiKey": key["apiKey"],
                "status": 2,
                "ipAddress": "203.0.113.5",
            },
        ),
        (
            "DELETE",
            IP_LIST,
            {"email": sub_email, "subAccountApiKey": key["apiKey"], "ipAddress": "203.0.113.5"},
        ),
    ]
    for method, path, params in refused:
        answer = master.call(method, path, params)
        assert (answer.status_code, answer.json()) == (401, REFUSED), path
    master.ok("GET", SUBACCOUNT_API, {"email": sub_email})
    master.ok("GET", IP_V1, {"email": sub_email, "subAccountApiKey": key["apiKey"]})
    master.ok("DELETE", SUBACCOUNT_API, {"email": sub_email, "subAccountApiKey": key["apiKey"]})
    assert master.ok("GET", RESTRICTIONS)["enableSpotAndMarginTrading"] is False


def test_master_permissions_and_withdrawals_show_in_its_restrictions(emulator, master):
    assert master_permissions(emulator.master) == [
        "Enable Reading",
        "Enable Spot & Margin Trading",
        "Permits Universal Transfer",
    ]
    emulator.master.can_withdraw = True
    assert master.ok("GET", RESTRICTIONS)["enableWithdrawals"] is True
    assert "Enable Withdrawals" in master_permissions(emulator.master)


def test_serve_announces_the_master_permissions_and_can_start_without_trading(tmp_path):
    from test_emulator_serve_command import Served

    served = Served(tmp_path / "data.json", "--master-without-trading")
    try:
        text = "\n".join(served.lines)
        assert "master permissions: Enable Reading, Permits Universal Transfer" in text
        assert "master IP whitelist: none (any IP)" in text
        client = served.client()
        answer = client.call("POST", VIRTUAL, {"subAccountString": "demo"})
        assert (answer.status_code, answer.json()) == (401, REFUSED)
        assert client.ok("GET", RESTRICTIONS)["enableSpotAndMarginTrading"] is False
    finally:
        assert served.stop() == 0
    served = Served(tmp_path / "data.json")
    try:
        assert any("Enable Spot & Margin Trading" in line for line in served.lines)
        assert served.client().ok("POST", VIRTUAL, {"subAccountString": "demo"})["email"]
    finally:
        served.stop()
