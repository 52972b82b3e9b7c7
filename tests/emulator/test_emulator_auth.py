"""Refusals with Binance's codes and HTTP statuses."""

from __future__ import annotations

import hashlib
import hmac
import threading
from urllib.parse import quote, urlencode

import pytest
from emulator_kit import (
    LIST_SUBS,
    RESTRICTIONS,
    SUBACCOUNT_API,
    HmacSigner,
    SignedClient,
    create_hmac_key,
)

from orchestrator.emulator import core
from orchestrator.emulator.core import Emulator, EmuRequest
from orchestrator.emulator.signing import payload_and_signature


def refusal(response) -> tuple[int, int]:
    return response.status_code, response.json()["code"]


def test_binance_documented_hmac_vector_verifies():
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    payload = (
        b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        b"&recvWindow=5000&timestamp=1499827319559"
    )
    expected = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    signed, signature = payload_and_signature(payload + b"&signature=" + expected.encode(), b"")
    assert signed == payload and signature == expected
    assert hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() == expected


def _send_raw(master, method: str, path: str, query: str, body: str, signed: str):
    """Send `query` and `body` as given, with a signature over `signed` appended to the body
    (or to the query when there is no body)."""
    signature = "signature=" + master.signer.sign(signed.encode())
    if body:
        body += "&" + signature
    else:
        query += "&" + signature
    headers = {"X-MBX-APIKEY": master.signer.api_key}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return master.http.request(method, f"{path}?{query}", content=body.encode(), headers=headers)


@pytest.mark.parametrize("email", ["bot@example.com", "a bot@example.com", "dé@example.com"])
def test_signature_over_the_payload_before_encoding_is_1022(master, email):
    """Binance verifies the exact bytes received; signing before percent-encoding fails as
    soon as encoding changes a parameter (an '@', a space, a non-ASCII letter)."""
    plain = f"email={email}&timestamp={master.now_ms()}"
    encoded = urlencode({"email": email, "timestamp": plain.rsplit("=", 1)[1]}, quote_via=quote)
    refused = _send_raw(master, "GET", LIST_SUBS, encoded, "", signed=plain)
    assert refusal(refused) == (400, -1022)
    accepted = _send_raw(master, "GET", LIST_SUBS, encoded, "", signed=encoded)
    assert accepted.status_code == 200, accepted.text


def test_signature_covers_query_then_body_as_received(master):
    email = "a bot@example.com"
    query = f"timestamp={master.now_ms()}"
    body = urlencode({"email": email, "apiName": "x", "status": 1}, quote_via=quote)
    plain_body = f"email={email}&apiName=x&status=1"
    refused = _send_raw(master, "POST", SUBACCOUNT_API, query, body, signed=query + plain_body)
    assert refusal(refused) == (400, -1022)
    passed = _send_raw(master, "POST", SUBACCOUNT_API, query, body, signed=query + body)
    assert refusal(passed)[1] != -1022


def test_unsigned_request_to_signed_endpoint(master):
    response = master.call("GET", LIST_SUBS, {"timestamp": master.now_ms()}, sign=False)
    assert refusal(response) == (400, -1102)
    assert response.json()["msg"] == (
        "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
    )


def test_wrong_secret_is_1022(emulator, master):
    forged = master.with_signer(HmacSigner(emulator.master.api_key, "x" * 64))
    assert refusal(forged.call("GET", LIST_SUBS)) == (400, -1022)


def test_a_non_ascii_signature_is_1022_not_a_server_error(master):
    response = master.call("GET", LIST_SUBS, {"limit": 10}, signature="é")
    assert refusal(response) == (400, -1022)


def test_tampered_parameters_are_1022(master):
    good = master.signer.sign(b"limit=5&timestamp=1")
    response = master.call("GET", LIST_SUBS, {"limit": 10}, signature=good)
    assert refusal(response) == (400, -1022)


def test_stale_timestamp_is_1021(master, clock):
    stale = master.now_ms() - 5001
    assert refusal(master.call("GET", LIST_SUBS, timestamp=stale)) == (400, -1021)
    ok = master.call("GET", LIST_SUBS, timestamp=stale, recv_window=10_000)
    assert ok.status_code == 200


def test_emulator_clock_advance_makes_requests_stale(master, emulator):
    signed_at = master.now_ms()
    emulator.advance(6)
    assert refusal(master.call("GET", LIST_SUBS, timestamp=signed_at)) == (400, -1021)


def test_future_timestamp_is_1021(master):
    response = master.call("GET", LIST_SUBS, timestamp=master.now_ms() + 1500)
    assert refusal(response) == (400, -1021)
    assert "ahead of the server" in response.json()["msg"]
    assert master.call("GET", LIST_SUBS, timestamp=master.now_ms() + 900).status_code == 200


def test_recv_window_over_60000_is_refused(master):
    assert refusal(master.call("GET", LIST_SUBS, recv_window=60_001)) == (400, -1131)


def test_missing_timestamp_is_1102(master):
    sig = master.signer.sign(b"limit=1")
    response = master.call("GET", LIST_SUBS, {"limit": 1, "signature": sig}, sign=False)
    assert refusal(response) == (400, -1102)
    assert "'timestamp'" in response.json()["msg"]


def test_unknown_key_is_2015(master):
    stranger = master.with_signer(HmacSigner("A" * 64, "s" * 64))
    response = stranger.call("GET", LIST_SUBS)
    assert refusal(response) == (401, -2015)
    assert response.json()["msg"] == "Invalid API-key, IP, or permissions for action."


@pytest.mark.parametrize("header", [None, "not a key!", ""])
def test_missing_or_malformed_key_is_2014(emulator, header):
    headers = {} if header is None else {"X-MBX-APIKEY": header}
    answer = emulator.handle(
        EmuRequest("GET", LIST_SUBS, "timestamp=1&signature=ab", headers=headers)
    )
    assert (answer.status, answer.json()["code"]) == (401, -2014)


def test_missing_mandatory_parameter_wording(master):
    response = master.call("POST", "/sapi/v1/sub-account/virtualSubAccount", {})
    assert refusal(response) == (400, -1102)
    assert response.json()["msg"] == (
        "Mandatory parameter 'subAccountString' was not sent, was empty/null, or malformed."
    )
    response = master.call("GET", SUBACCOUNT_API, {})
    assert response.json()["msg"] == (
        "Mandatory parameter 'email' was not sent, was empty/null, or malformed."
    )


def test_unknown_path_is_404(master):
    assert master.call("GET", "/sapi/v1/nothing/here").status_code == 404


def test_sub_account_key_from_wrong_ip_is_2015(emulator, master, sub_email):
    key = create_hmac_key(master, sub_email, status=2, ipAddress="203.0.113.10")
    signer = HmacSigner(key["apiKey"], key["secretKey"])
    local = SignedClient(emulator, signer)
    assert refusal(local.call("GET", RESTRICTIONS)) == (401, -2015)
    whitelisted = SignedClient(emulator, signer, client_ip="203.0.113.10")
    assert whitelisted.ok("GET", RESTRICTIONS)["ipRestrict"] is True


def test_trusted_ip_header_presents_a_public_ip(clock, sub_email, master):
    emulator = master.emulator
    emulator.trusted_ip_header = "x-forwarded-for"
    key = create_hmac_key(master, sub_email, status=2, ipAddress="203.0.113.10")
    client = SignedClient(emulator, HmacSigner(key["apiKey"], key["secretKey"]))
    assert client.call("GET", RESTRICTIONS).status_code == 401
    forwarded = client.call("GET", RESTRICTIONS, headers={"X-Forwarded-For": "203.0.113.10"})
    assert forwarded.status_code == 200


def test_sub_account_key_cannot_manage_sub_accounts(master, sub_email):
    key = create_hmac_key(master, sub_email)
    sub = master.with_signer(HmacSigner(key["apiKey"], key["secretKey"]))
    assert refusal(sub.call("GET", LIST_SUBS)) == (401, -2015)


def test_master_ip_whitelist(clock):
    emulator = Emulator(None, clock=clock, master_ips=["203.0.113.50"])
    signer = HmacSigner(emulator.master.api_key, emulator.master.secret)
    assert refusal(SignedClient(emulator, signer).call("GET", LIST_SUBS)) == (401, -2015)
    allowed = SignedClient(emulator, signer, client_ip="203.0.113.50")
    assert allowed.ok("GET", RESTRICTIONS)["ipRestrict"] is True


def test_master_from_environment(monkeypatch, clock, tmp_path):
    monkeypatch.setenv("BINANCE_API_KEY", "K" * 64)
    monkeypatch.setenv("BINANCE_API_SECRET", "S" * 64)
    emulator = Emulator(tmp_path / "data.json", clock=clock)
    assert not emulator.master_generated
    client = SignedClient(emulator, HmacSigner("K" * 64, "S" * 64))
    assert client.ok("GET", LIST_SUBS) == {"subAccounts": []}


def test_master_from_private_key_file(monkeypatch, clock, tmp_path):
    from emulator_kit import AsymmetricSigner, new_ed25519, private_pem

    private, _ = new_ed25519()
    key_file = tmp_path / "master.pem"
    key_file.write_text(private_pem(private))
    monkeypatch.setenv("BINANCE_API_KEY", "M" * 64)
    monkeypatch.setenv("BINANCE_PRIVATE_KEY_FILE", str(key_file))
    emulator = Emulator(None, clock=clock)
    client = SignedClient(emulator, AsymmetricSigner("M" * 64, private))
    assert client.ok("GET", LIST_SUBS) == {"subAccounts": []}


def test_parameters_are_parsed_before_the_emulator_lock_is_taken(emulator, monkeypatch):
    """A large body is parsed by its own thread, never while every other client waits."""
    parsed = threading.Event()
    parse = core._params

    def noting_parse(*args):
        parsed.set()
        return parse(*args)

    monkeypatch.setattr(core, "_params", noting_parse)
    request = EmuRequest("GET", LIST_SUBS, "limit=5", body=b"email=a%40b.c")
    with emulator._lock:
        worker = threading.Thread(target=emulator.handle, args=(request,), daemon=True)
        worker.start()
        parsed_while_locked = parsed.wait(timeout=2)
    worker.join(timeout=5)
    assert parsed_while_locked


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize(
    "timestamp, params",
    [
        ("arabic", {}),
        ("9" * 5_000, {}),
        ("now", {"recvWindow": "¹"}),
        ("now", {"recvWindow": "٥٠٠٠"}),
        ("now", {"recvWindow": "9" * 5_000}),
        ("now", {"limit": "¹"}),
        ("now", {"limit": "--5"}),
        ("now", {"page": "٢"}),
    ],
)
def test_integers_on_the_wire_are_ascii_digits_only(master, timestamp, params):
    now = str(master.now_ms())
    stamp = {"now": now, "arabic": now.translate(ARABIC_INDIC)}.get(timestamp, timestamp)
    answer = master.call("GET", LIST_SUBS, params, timestamp=stamp)
    assert refusal(answer) == (400, -1100), answer.text


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1, "10", True, 1e300])
def test_advance_refuses_a_step_that_would_break_the_clock(emulator, master, seconds):
    before = emulator.now()
    with pytest.raises((ValueError, TypeError)):
        emulator.advance(seconds)
    assert emulator.now() == before
    assert master.ok("GET", LIST_SUBS, {"limit": 5}) == {"subAccounts": []}
