"""Every endpoint's happy path and response shape, through httpx and EmulatorTransport."""

from __future__ import annotations

from emulator_kit import (
    IP_LIST,
    IP_V1,
    IP_V2,
    LIST_SUBS,
    PERMISSION,
    RESTRICTIONS,
    SUBACCOUNT_API,
    VIRTUAL,
    AsymmetricSigner,
    HmacSigner,
    create_hmac_key,
    new_ed25519,
    new_rsa,
)

FLAGS = [
    "canTrade",
    "canMarginLoanRepay",
    "canFuturesTrade",
    "canUniversalTransfer",
    "canVanillaOptions",
]


def test_server_time_and_ping_are_unsigned(master, clock):
    assert master.ok("GET", "/api/v3/time", sign=False) == {"serverTime": int(clock() * 1000)}
    assert master.ok("GET", "/api/v3/ping", sign=False) == {}


def test_create_virtual_subaccount_returns_a_virtual_email(master):
    email = master.ok("POST", VIRTUAL, {"subAccountString": "copytrade"})["email"]
    local, _, domain = email.partition("@")
    assert local == "copytrade_virtual"
    assert domain.endswith("noemail.com") and len(domain) > len("noemail.com")


def test_list_subaccounts_shape_filter_and_paging(master, clock):
    emails = []
    for name in ("a1", "b2", "c3"):
        emails.append(master.ok("POST", VIRTUAL, {"subAccountString": name})["email"])
        clock.advance(1)
    page = master.ok("GET", LIST_SUBS, {"limit": 200})["subAccounts"]
    assert [s["email"] for s in page] == emails
    assert set(page[0]) == {
        "email",
        "subUserId",
        "remark",
        "isFreeze",
        "createTime",
        "isManagedSubAccount",
        "isAssetManagementSubAccount",
    }
    assert page[0]["isFreeze"] is False and isinstance(page[0]["subUserId"], int)
    assert [s["email"] for s in master.ok("GET", LIST_SUBS)["subAccounts"]] == emails[:1]
    second = master.ok("GET", LIST_SUBS, {"page": 2, "limit": 2})["subAccounts"]
    assert [s["email"] for s in second] == emails[2:]
    only = master.ok("GET", LIST_SUBS, {"email": emails[1], "limit": 10})["subAccounts"]
    assert [s["email"] for s in only] == [emails[1]]
    assert master.ok("GET", LIST_SUBS, {"isFreeze": "true", "limit": 10}) == {"subAccounts": []}


def test_create_hmac_key_shape(master, sub_email):
    created = master.ok(
        "POST",
        SUBACCOUNT_API,
        {
            "email": sub_email,
            "apiName": "orc-QuantBot-g1",
            "status": 2,
            "ipAddress": "203.0.113.10,198.51.100.7",
            "canTrade": "true",
            "canFuturesTrade": "true",
        },
    )
    assert set(created) == {"apiName", "apiKey", "secretKey", *FLAGS, "status", "ipList"}
    assert len(created["apiKey"]) == 64 and len(created["secretKey"]) == 64
    assert created["status"] == 2
    assert created["ipList"] == ["203.0.113.10", "198.51.100.7"]
    assert created["canTrade"] is True and created["canFuturesTrade"] is True
    assert created["canMarginLoanRepay"] is False


def test_create_ed25519_key_from_body_has_no_secret(master, sub_email):
    _, pem = new_ed25519()
    created = master.ok(
        "POST",
        SUBACCOUNT_API,
        body={
            "email": sub_email,
            "apiName": "ed",
            "status": 1,
            "publicKey": pem,
        },
    )
    assert "secretKey" not in created and len(created["apiKey"]) == 64
    assert created["status"] == 1 and created["ipList"] == []


def test_query_keys_shape_filter_and_paging(master, sub_email, clock):
    keys = []
    for i in range(3):
        keys.append(create_hmac_key(master, sub_email, f"k{i}")["apiKey"])
        clock.advance(1)
    listing = master.ok("GET", SUBACCOUNT_API, {"email": sub_email})
    assert listing["total"] == 3
    row = listing["rows"][0]
    assert set(row) == {"email", "apiName", "apikey", *FLAGS, "timestamp"}
    assert row["email"] == sub_email and row["apikey"] == keys[0]
    assert row["timestamp"] == int((clock() - 3) * 1000)
    assert "secretKey" not in str(listing) and "ipList" not in row
    one = master.ok("GET", SUBACCOUNT_API, {"email": sub_email, "subAccountApiKey": keys[1]})
    assert one["total"] == 1 and one["rows"][0]["apiName"] == "k1"
    page2 = master.ok("GET", SUBACCOUNT_API, {"email": sub_email, "page": 2, "size": 2})
    assert page2["total"] == 3 and [r["apikey"] for r in page2["rows"]] == keys[2:]
    none = master.ok("GET", SUBACCOUNT_API, {"email": sub_email, "subAccountApiKey": "x" * 64})
    assert none == {"total": 0, "rows": []}


def test_delete_key_is_immediate(master, sub_email):
    key = create_hmac_key(master, sub_email)
    deleted = master.ok(
        "DELETE", SUBACCOUNT_API, {"email": sub_email, "subAccountApiKey": key["apiKey"]}
    )
    assert deleted == {}
    assert master.ok("GET", SUBACCOUNT_API, {"email": sub_email})["total"] == 0
    sub_client = master.with_signer(HmacSigner(key["apiKey"], key["secretKey"]))
    assert sub_client.call("GET", RESTRICTIONS).json()["code"] == -2015


def test_modify_permissions(master, sub_email, clock):
    key = create_hmac_key(master, sub_email, canTrade="true")["apiKey"]
    clock.advance(7)
    answer = master.ok(
        "POST",
        PERMISSION,
        {
            "email": sub_email,
            "subAccountApiKey": key,
            "canTrade": "false",
            "canFuturesTrade": "true",
            "canMarginLoanRepay": "false",
            "canUniversalTransfer": "false",
            "canVanillaOptions": "true",
        },
    )
    assert set(answer) == {"apiName", "apikey", *FLAGS, "timestamp"}
    assert answer["timestamp"] == int(clock() * 1000)  # the time of this update
    assert answer["canTrade"] is False and answer["canFuturesTrade"] is True
    assert answer["canVanillaOptions"] is True
    row = master.ok("GET", SUBACCOUNT_API, {"email": sub_email})["rows"][0]
    assert row["canFuturesTrade"] is True and row["canTrade"] is False


def test_ip_restriction_add_get_delete(master, sub_email, clock):
    key = create_hmac_key(master, sub_email)["apiKey"]
    ident = {"email": sub_email, "subAccountApiKey": key}
    view = master.ok("GET", IP_V1, ident)
    assert view == {
        "ipRestrict": "false",
        "ipList": [],
        "updateTime": view["updateTime"],
        "apiKey": key,
    }
    clock.advance(5)
    added = master.ok("POST", IP_V2, {**ident, "status": 2, "ipAddress": "203.0.113.1"})
    assert added == {
        "status": "2",
        "ipList": ["203.0.113.1"],
        "updateTime": int(clock() * 1000),
        "apiKey": key,
    }
    added = master.ok("POST", IP_V2, {**ident, "status": 2, "ipAddress": "203.0.113.2,203.0.113.1"})
    assert added["ipList"] == ["203.0.113.1", "203.0.113.2"]
    view = master.ok("GET", IP_V1, ident)
    assert view["ipRestrict"] == "true" and view["ipList"] == ["203.0.113.1", "203.0.113.2"]
    after = master.ok("DELETE", IP_LIST, {**ident, "ipAddress": "203.0.113.1"})
    assert after["ipRestrict"] == "true" and after["ipList"] == ["203.0.113.2"]
    assert set(after) == {"ipRestrict", "ipList", "updateTime", "apiKey"}
    lifted = master.ok("POST", IP_V2, {**ident, "status": 1})
    assert lifted["status"] == "1" and "ipList" not in lifted
    assert master.ok("GET", IP_V1, ident)["ipRestrict"] == "false"


def test_api_restrictions_for_master_and_sub_keys(master, sub_email):
    fields = {
        "ipRestrict",
        "createTime",
        "enableReading",
        "enableSpotAndMarginTrading",
        "enableWithdrawals",
        "enableInternalTransfer",
        "enableMargin",
        "enableFutures",
        "permitsUniversalTransfer",
        "enableVanillaOptions",
    }
    own = master.ok("GET", RESTRICTIONS)
    assert fields <= set(own) and own["enableWithdrawals"] is False
    key = create_hmac_key(master, sub_email, canFuturesTrade="true", canVanillaOptions="true")
    sub = master.with_signer(HmacSigner(key["apiKey"], key["secretKey"]))
    seen = sub.ok("GET", RESTRICTIONS)
    assert seen["ipRestrict"] is False and seen["enableReading"] is True
    assert seen["enableFutures"] is True and seen["enableVanillaOptions"] is True
    assert seen["enableSpotAndMarginTrading"] is False and seen["enableWithdrawals"] is False


def test_an_ed25519_key_signs_its_own_calls(master, sub_email):
    private, pem = new_ed25519()
    created = master.ok(
        "POST",
        SUBACCOUNT_API,
        body={
            "email": sub_email,
            "apiName": "ed",
            "status": 1,
            "publicKey": pem,
            "canTrade": "true",
        },
    )
    own = master.with_signer(AsymmetricSigner(created["apiKey"], private))
    assert own.ok("GET", RESTRICTIONS)["enableSpotAndMarginTrading"] is True


def test_v1_create_refuses_an_rsa_public_key(master, sub_email):
    """v1 documents `publicKey` as an Ed25519 key; RSA keys are a v2-only feature."""
    _, pem = new_rsa()
    refused = master.call(
        "POST",
        SUBACCOUNT_API,
        body={"email": sub_email, "apiName": "rsa", "status": 1, "publicKey": pem},
    )
    assert refused.status_code == 400 and refused.json()["code"] == -1100
    assert "Ed25519" in refused.json()["msg"]
    assert master.ok("GET", SUBACCOUNT_API, {"email": sub_email})["total"] == 0


def test_bare_base64_der_public_key_is_accepted(master, sub_email):
    private, pem = new_ed25519()
    der_b64 = "".join(pem.strip().splitlines()[1:-1])
    created = master.ok(
        "POST",
        SUBACCOUNT_API,
        body={
            "email": sub_email,
            "apiName": "der",
            "status": 1,
            "publicKey": der_b64,
        },
    )
    own = master.with_signer(AsymmetricSigner(created["apiKey"], private))
    assert own.ok("GET", RESTRICTIONS)["enableReading"] is True


def test_signature_in_body_with_params_split_between_query_and_body(master, sub_email):
    """Binance's documented example 3: part in the query, part in the body, no '&' between."""
    answer = master.ok(
        "POST", SUBACCOUNT_API, {"email": sub_email}, body={"apiName": "split", "status": "1"}
    )
    assert answer["apiName"] == "split"


def test_sub_accounts_made_in_the_web_ui_can_be_added(emulator, master):
    emulator.add_subaccount("quant@example.com")
    emulator.add_subaccount("quant@example.com")
    listed = master.ok("GET", LIST_SUBS, {"limit": 200})["subAccounts"]
    assert [s["email"] for s in listed] == ["quant@example.com"]
    assert create_hmac_key(master, "quant@example.com")["apiKey"]
