"""Per-endpoint weight budgets, the used-weight headers, 429 with Retry-After."""

from __future__ import annotations

from emulator_kit import (
    IP_V1,
    LIST_SUBS,
    SUBACCOUNT_API,
    VIRTUAL,
    FakeClock,
    HmacSigner,
    SignedClient,
    create_hmac_key,
)

from orchestrator.emulator.core import Emulator


def test_61st_call_to_a_3000_weight_endpoint_gets_429(master, sub_email, clock):
    clock.t = 1_699_999_980.0 + 40  # 20 s before the end of a minute window
    query = {"email": sub_email}
    for i in range(60):
        response = master.call("GET", SUBACCOUNT_API, query)
        assert response.status_code == 200, i
        assert response.headers["X-SAPI-USED-UID-WEIGHT-1M"] == str(3000 * (i + 1))
    refused = master.call("GET", SUBACCOUNT_API, query)
    assert refused.status_code == 429 and refused.json()["code"] == -1003
    assert refused.headers["Retry-After"] == "20"
    assert refused.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "180000"
    # other endpoints have budgets of their own
    ident = {"email": sub_email, "subAccountApiKey": create_hmac_key(master, sub_email)["apiKey"]}
    assert master.call("GET", IP_V1, ident).status_code == 200
    listed = master.call("GET", LIST_SUBS)
    assert listed.status_code == 200 and listed.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"
    # a refused call costs nothing; the next window starts afresh
    assert master.call("GET", SUBACCOUNT_API, query).headers["X-SAPI-USED-UID-WEIGHT-1M"] == (
        "180000"
    )
    clock.advance(20)
    again = master.call("GET", SUBACCOUNT_API, query)
    assert again.status_code == 200 and again.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "3000"


def test_sapi_keeps_answering_429_with_its_own_wording_and_never_bans(master, sub_email, clock):
    """/sapi limits do not escalate to 418 IP bans, however long the caller keeps going."""
    clock.t = 1_699_999_980.0 + 30
    query = {"email": sub_email}
    for _ in range(60):
        assert master.call("GET", SUBACCOUNT_API, query).status_code == 200
    for _ in range(100):
        refused = master.call("GET", SUBACCOUNT_API, query)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
        assert refused.json() == {
            "code": -1003,
            "msg": "Too many requests; current request has limited.",
        }


def test_api_endpoints_report_mbx_weight(master):
    response = master.call("GET", "/api/v3/time", sign=False)
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "1"


def test_refused_authentication_costs_no_weight(master, emulator):
    forged = master.with_signer(HmacSigner(emulator.master.api_key, "x" * 64))
    assert forged.call("GET", LIST_SUBS).status_code == 400
    assert master.call("GET", LIST_SUBS).headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"


def test_time_scale_shrinks_the_window():
    clock = FakeClock(2_833_333_334 * 0.6)  # the start of a 0.6 s window
    emulator = Emulator(None, clock=clock, time_scale=100)  # 0.6 s windows
    master = SignedClient(emulator, HmacSigner(emulator.master.api_key, emulator.master.secret))
    email = master.ok(
        "POST", "/sapi/v1/sub-account/virtualSubAccount", {"subAccountString": "fast"}
    )["email"]
    clock.advance(0.1)  # 0.5 s left in the window
    for _ in range(60):
        assert master.call("GET", SUBACCOUNT_API, {"email": email}).status_code == 200
    refused = master.call("GET", SUBACCOUNT_API, {"email": email})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "0.50"
    clock.advance(0.51)
    assert master.call("GET", SUBACCOUNT_API, {"email": email}).status_code == 200


def test_uid_budget_is_per_account_ip_budget_per_address(emulator, master, sub_email):
    key = create_hmac_key(master, sub_email)
    sub = master.with_signer(HmacSigner(key["apiKey"], key["secretKey"]))
    other = master.with_signer(
        HmacSigner(key["apiKey"], key["secretKey"]), client_ip="198.51.100.1"
    )
    sub.ok("GET", "/sapi/v1/account/apiRestrictions")
    response = other.call("GET", "/sapi/v1/account/apiRestrictions")
    assert response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"


def _new_key(client: SignedClient, email: str, name: str):
    return client.call("POST", SUBACCOUNT_API, {"email": email, "apiName": name, "status": 1})


def test_a_second_key_create_in_the_same_second_is_refused(master, clock):
    """About one key per sub-account per second; other sub-accounts are not held back."""
    first = master.ok("POST", VIRTUAL, {"subAccountString": "first"})["email"]
    second = master.ok("POST", VIRTUAL, {"subAccountString": "second"})["email"]
    assert _new_key(master, first, "one").status_code == 200
    clock.advance(0.5)
    refused = _new_key(master, first, "two")
    assert refused.status_code == 429 and refused.json()["code"] == -1003
    assert refused.headers["Retry-After"] == "1"
    assert _new_key(master, second, "one").status_code == 200
    clock.advance(0.5)
    assert _new_key(master, first, "two").status_code == 200
    assert master.ok("GET", SUBACCOUNT_API, {"email": first})["total"] == 2


def test_the_creation_pace_scales_with_time_scale(clock):
    emulator = Emulator(None, clock=clock, time_scale=10)
    master = SignedClient(emulator, HmacSigner(emulator.master.api_key, emulator.master.secret))
    email = master.ok("POST", VIRTUAL, {"subAccountString": "fast"})["email"]
    assert _new_key(master, email, "one").status_code == 200
    clock.advance(0.06)
    refused = _new_key(master, email, "two")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "0.04"
    clock.advance(0.04)
    assert _new_key(master, email, "two").status_code == 200


def test_a_refused_create_does_not_restart_the_interval(master, sub_email, clock):
    assert _new_key(master, sub_email, "one").status_code == 200
    clock.advance(0.9)
    assert _new_key(master, sub_email, "two").status_code == 429
    clock.advance(0.1)
    assert _new_key(master, sub_email, "two").status_code == 200
