"""The account rules: 30 keys, 500 characters of IPs, IPv4 only, secret once, no withdrawals."""

from __future__ import annotations

import pytest
from emulator_kit import (
    IP_LIST,
    IP_V1,
    IP_V2,
    LIST_SUBS,
    PERMISSION,
    SUBACCOUNT_API,
    VIRTUAL,
    create_hmac_key,
    new_ed25519,
)

from orchestrator.emulator.core import Emulator


def code(response) -> int:
    return response.json()["code"]


def test_at_most_30_keys_per_sub_account(master, sub_email, clock):
    for i in range(30):
        create_hmac_key(master, sub_email, f"k{i}")
        clock.advance(1)  # about one new key per sub-account per second
    refused = master.call(
        "POST", SUBACCOUNT_API, {"email": sub_email, "apiName": "k30", "status": 1}
    )
    assert refused.status_code == 400 and code(refused) == -9000
    assert master.ok("GET", SUBACCOUNT_API, {"email": sub_email, "size": 100})["total"] == 30


def test_ip_list_over_500_characters_is_refused(master, sub_email):
    ips = ",".join(f"203.0.{i // 250}.{i % 250 + 1}" for i in range(60))
    assert len(ips) > 500
    refused = master.call(
        "POST",
        SUBACCOUNT_API,
        {"email": sub_email, "apiName": "many", "status": 2, "ipAddress": ips},
    )
    assert code(refused) == -1100


def test_adding_ips_past_500_characters_is_refused(master, sub_email):
    key = create_hmac_key(master, sub_email)["apiKey"]
    ident = {"email": sub_email, "subAccountApiKey": key}
    batch = lambda n: ",".join(f"198.51.{n}.{i}" for i in range(1, 31))  # noqa: E731
    assert master.call("POST", IP_V2, {**ident, "status": 2, "ipAddress": batch(1)}).is_success
    refused = master.call("POST", IP_V2, {**ident, "status": 2, "ipAddress": batch(2)})
    assert code(refused) == -1100


@pytest.mark.parametrize("bad", ["2001:db8::1", "10.0.0.0/8", "300.1.1.1", "example.com"])
def test_only_ipv4_addresses(master, sub_email, bad):
    refused = master.call(
        "POST", SUBACCOUNT_API, {"email": sub_email, "apiName": "v6", "status": 2, "ipAddress": bad}
    )
    assert refused.status_code == 400 and code(refused) == -1100


def test_status_2_needs_ip_address(master, sub_email):
    refused = master.call("POST", SUBACCOUNT_API, {"email": sub_email, "apiName": "x", "status": 2})
    assert code(refused) == -1102 and "'ipAddress'" in refused.json()["msg"]


def test_secret_is_returned_only_once(master, sub_email):
    created = create_hmac_key(master, sub_email)
    secret = created["secretKey"]
    ident = {"email": sub_email, "subAccountApiKey": created["apiKey"]}
    answers = [
        master.call("GET", SUBACCOUNT_API, {"email": sub_email}),
        master.call("GET", SUBACCOUNT_API, ident),
        master.call("POST", PERMISSION, {**ident, "canTrade": "true"}),
        master.call("GET", "/sapi/v1/sub-account/subAccountApi/ipRestriction", ident),
        master.call("POST", IP_V2, {**ident, "status": 2, "ipAddress": "203.0.113.9"}),
        master.call("GET", LIST_SUBS, {"limit": 200}),
    ]
    for answer in answers:
        assert answer.status_code == 200 and secret not in answer.text


def test_v1_create_takes_the_public_key_from_the_query_too(master, sub_email):
    """Binance's official SDKs send every v1 parameter in the query string, publicKey too."""
    _, pem = new_ed25519()
    created = master.ok(
        "POST", SUBACCOUNT_API, {"email": sub_email, "apiName": "ed", "status": 1, "publicKey": pem}
    )
    assert "secretKey" not in created
    assert master.ok("GET", SUBACCOUNT_API, {"email": sub_email})["total"] == 1


def test_invalid_public_key_is_refused(master, sub_email):
    refused = master.call(
        "POST",
        SUBACCOUNT_API,
        body={"email": sub_email, "apiName": "ed", "status": 1, "publicKey": "not a key"},
    )
    assert code(refused) == -1100


def test_withdrawals_can_never_be_enabled(master, sub_email):
    refused = master.call(
        "POST",
        SUBACCOUNT_API,
        {"email": sub_email, "apiName": "w", "status": 1, "canWithdraw": "true"},
    )
    assert code(refused) == -9000
    key = create_hmac_key(master, sub_email)["apiKey"]
    refused = master.call(
        "POST", PERMISSION, {"email": sub_email, "subAccountApiKey": key, "canWithdraw": "true"}
    )
    assert code(refused) == -9000


@pytest.mark.parametrize("name", ["", "x" * 65, "bad/name"])
def test_api_name_rules(master, sub_email, name):
    refused = master.call(
        "POST", SUBACCOUNT_API, {"email": sub_email, "apiName": name, "status": 1}
    )
    assert code(refused) in (-1100, -1102)


def test_duplicate_and_invalid_sub_account_strings(master):
    master.ok("POST", VIRTUAL, {"subAccountString": "twin"})
    assert code(master.call("POST", VIRTUAL, {"subAccountString": "twin"})) == -9000
    assert code(master.call("POST", VIRTUAL, {"subAccountString": "no spaces"})) == -1100
    assert code(master.call("POST", VIRTUAL, {"subAccountString": "x" * 21})) == -1100


STRANGER = "nobody@example.com"
NOT_A_CHILD = "This two users are not in parent-child relation."


@pytest.mark.parametrize(
    "method, path, params",
    [
        ("POST", SUBACCOUNT_API, {"apiName": "x", "status": 1}),
        ("GET", SUBACCOUNT_API, {}),
        ("DELETE", SUBACCOUNT_API, {"subAccountApiKey": "Z" * 64}),
        ("POST", PERMISSION, {"subAccountApiKey": "Z" * 64, "canTrade": "true"}),
        ("POST", IP_V2, {"subAccountApiKey": "Z" * 64, "status": 2, "ipAddress": "203.0.113.1"}),
        ("GET", IP_V1, {"subAccountApiKey": "Z" * 64}),
        ("DELETE", IP_LIST, {"subAccountApiKey": "Z" * 64, "ipAddress": "203.0.113.1"}),
    ],
)
def test_an_email_that_is_not_a_sub_account_is_9000(master, sub_email, method, path, params):
    refused = master.call(method, path, {"email": STRANGER, **params})
    assert refused.status_code == 400
    assert refused.json() == {"code": -9000, "msg": NOT_A_CHILD}


def test_unknown_key_of_a_sub_account(master, sub_email):
    refused = master.call(
        "DELETE", SUBACCOUNT_API, {"email": sub_email, "subAccountApiKey": "Z" * 64}
    )
    assert code(refused) == -1100


def test_paging_limits(master, sub_email):
    assert code(master.call("GET", LIST_SUBS, {"limit": 201})) == -1130
    assert code(master.call("GET", SUBACCOUNT_API, {"email": sub_email, "size": 101})) == -1130
    assert code(master.call("GET", SUBACCOUNT_API, {"email": sub_email, "page": 0})) == -1130


def test_failed_permission_change_changes_nothing(master, sub_email):
    key = create_hmac_key(master, sub_email)["apiKey"]
    refused = master.call(
        "POST",
        PERMISSION,
        {"email": sub_email, "subAccountApiKey": key, "canTrade": "true", "canFuturesTrade": "x"},
    )
    assert code(refused) == -1100
    row = master.ok("GET", SUBACCOUNT_API, {"email": sub_email})["rows"][0]
    assert row["canTrade"] is False


def test_time_scale_must_be_positive():
    with pytest.raises(ValueError):
        Emulator(None, time_scale=0)
