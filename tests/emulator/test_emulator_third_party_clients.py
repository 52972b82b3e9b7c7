"""Widely used Binance clients against the HTTP server: python-binance, binance-connector and
Binance's official SDK (`binance-sdk-sub-account`).

python-binance signs the parameters before encoding them. It sends GET parameters raw in the
query (so the bytes match), but POST/DELETE parameters form-encoded in the body: Binance (and
the emulator) refuse those with -1022 as soon as encoding changes them, e.g. the '@' of every
email. With `force_params` python-binance sends them raw in the query instead, which works as
long as the values need no encoding. binance-connector and the official SDK send everything
in the query string, encoded, and sign what they send.
"""

from __future__ import annotations

import warnings

import pytest
from emulator_kit import new_ed25519, new_rsa, private_pem
from test_emulator_serve_command import Served

from orchestrator.emulator.core import Emulator
from orchestrator.emulator.server import start_in_thread

with warnings.catch_warnings():  # python-binance imports the deprecated websockets.legacy
    warnings.simplefilter("ignore", DeprecationWarning)
    from binance.client import Client
    from binance.error import ClientError
    from binance.exceptions import BinanceAPIException
    from binance.spot import Spot
    from binance_common.configuration import ConfigurationRestAPI
    from binance_sdk_sub_account.sub_account import SubAccount


@pytest.fixture
def served():
    emulator = Emulator(None)
    server, base_url = start_in_thread(emulator)
    yield emulator, base_url
    server.shutdown()
    server.server_close()


def python_binance(
    base_url: str, api_key: str, secret: str | None = None, private_key: str | None = None
) -> Client:
    client = Client(api_key, secret, private_key=private_key, ping=False)
    client.API_URL = base_url + "/api"
    client.MARGIN_API_URL = base_url + "/sapi"
    return client


def sapi(client: Client, method: str, path: str, version: int = 1, **data):
    """A signed /sapi call with the parameters raw in the query (`force_params`)."""
    return client._request_margin_api(
        method, path, True, version=version, data=data, force_params=True
    )


def connector(base_url: str, api_key: str, secret: str) -> Spot:
    return Spot(api_key=api_key, api_secret=secret, base_url=base_url)


def test_python_binance_full_key_lifecycle(served):
    emulator, base_url = served
    client = python_binance(base_url, emulator.master.api_key, emulator.master.secret)
    client.ping()
    assert "serverTime" in client.get_server_time()
    email = client.margin_v1_post_sub_account_virtual_sub_account(subAccountString="pyb")["email"]
    assert client.get_sub_account_list(email=email)["subAccounts"][0]["email"] == email

    hmac_key = sapi(
        client,
        "post",
        "sub-account/subAccountApi",
        email=email,
        apiName="py-bot",
        status=2,
        ipAddress="127.0.0.1",
        canTrade="true",
    )
    assert len(hmac_key["secretKey"]) == 64
    emulator.advance(1)  # about one new key per sub-account per second
    private, pem = new_ed25519()
    registrar = connector(base_url, emulator.master.api_key, emulator.master.secret)
    ed_key = registrar.sign_request(
        "POST",
        "/sapi/v1/sub-account/subAccountApi",
        {"email": email, "apiName": "ed", "status": 1, "publicKey": pem},
    )
    assert "secretKey" not in ed_key
    listed = sapi(client, "get", "sub-account/subAccountApi", email=email)
    assert {r["apikey"] for r in listed["rows"]} == {hmac_key["apiKey"], ed_key["apiKey"]}

    ident = {"email": email, "subAccountApiKey": hmac_key["apiKey"]}
    changed = sapi(
        client,
        "post",
        "sub-account/subAccountApiPermission",
        **ident,
        canTrade="false",
        canFuturesTrade="true",
    )
    assert changed["canFuturesTrade"] is True and changed["canTrade"] is False
    added = sapi(
        client,
        "post",
        "sub-account/subAccountApi/ipRestriction",
        version=2,
        **ident,
        status=2,
        ipAddress="203.0.113.5,203.0.113.6",
    )
    assert added["ipList"] == ["127.0.0.1", "203.0.113.5", "203.0.113.6"]
    left = sapi(
        client,
        "delete",
        "sub-account/subAccountApi/ipRestriction/ipList",
        **ident,
        ipAddress="203.0.113.5",
    )
    assert left["ipList"] == ["127.0.0.1", "203.0.113.6"] and left["ipRestrict"] == "true"

    as_hmac = python_binance(base_url, hmac_key["apiKey"], hmac_key["secretKey"])
    assert as_hmac.get_account_api_permissions()["enableFutures"] is True
    as_ed = python_binance(base_url, ed_key["apiKey"], private_key=private_pem(private))
    assert as_ed.get_account_api_permissions()["ipRestrict"] is False

    assert sapi(client, "delete", "sub-account/subAccountApi", **ident) == {}
    with pytest.raises(BinanceAPIException) as refused:
        as_hmac.get_account_api_permissions()
    assert refused.value.code == -2015


def test_python_binance_gets_binance_error_codes(served):
    emulator, base_url = served
    master = emulator.master
    cases = [
        (python_binance(base_url, master.api_key, "x" * 64), -1022),
        (python_binance(base_url, "A" * 64, "x" * 64), -2015),
    ]
    for client, code in cases:
        with pytest.raises(BinanceAPIException) as refused:
            client.get_sub_account_list()
        assert refused.value.code == code
    stale = python_binance(base_url, master.api_key, master.secret)
    stale.timestamp_offset = -20_000
    with pytest.raises(BinanceAPIException) as refused:
        stale.get_sub_account_list()
    assert refused.value.code == -1021
    good = python_binance(base_url, master.api_key, master.secret)
    with pytest.raises(BinanceAPIException) as refused:
        sapi(good, "post", "sub-account/subAccountApi", email="x@y.com", status=1)
    assert refused.value.code == -1102


def test_python_binance_form_body_signed_before_encoding_is_1022(served):
    """python-binance's own POST helpers sign `email=a@b` and send `email=a%40b`."""
    emulator, base_url = served
    client = python_binance(base_url, emulator.master.api_key, emulator.master.secret)
    email = client.margin_v1_post_sub_account_virtual_sub_account(subAccountString="enc")["email"]
    with pytest.raises(BinanceAPIException) as refused:
        client.margin_v2_post_sub_account_sub_account_api_ip_restriction(
            email=email, subAccountApiKey="A" * 64, status=1
        )
    assert refused.value.code == -1022


def test_python_binance_meets_429_on_the_61st_call(served):
    emulator, base_url = served
    client = python_binance(base_url, emulator.master.api_key, emulator.master.secret)
    email = client.margin_v1_post_sub_account_virtual_sub_account(subAccountString="rl")["email"]
    refused_at = None
    for i in range(1, 66):
        try:
            sapi(client, "get", "sub-account/subAccountApi", email=email)
        except BinanceAPIException as exc:
            refused_at = i
            assert exc.status_code == 429 and exc.code == -1003
            assert 0 < int(exc.response.headers["Retry-After"]) <= 60
            break
    assert refused_at == 61


def test_binance_connector_full_key_lifecycle(served):
    emulator, base_url = served
    spot = Spot(
        api_key=emulator.master.api_key, api_secret=emulator.master.secret, base_url=base_url
    )
    assert "serverTime" in spot.time()
    email = spot.sub_account_create("conn")["email"]
    assert spot.sub_account_list(email=email)["subAccounts"][0]["email"] == email
    created = spot.sign_request(
        "POST",
        "/sapi/v1/sub-account/subAccountApi",
        {"email": email, "apiName": "conn bot", "status": 1},
    )
    ident = {"email": email, "subAccountApiKey": created["apiKey"]}
    rows = spot.sign_request("GET", "/sapi/v1/sub-account/subAccountApi", {"email": email})
    assert rows["total"] == 1 and rows["rows"][0]["apiName"] == "conn bot"
    spot.sign_request(
        "POST", "/sapi/v1/sub-account/subAccountApiPermission", {**ident, "canTrade": "true"}
    )
    added = spot.sub_account_update_ip_restriction(**ident, status="2", ipAddress="127.0.0.1")
    assert added["status"] == "2"
    assert spot.sub_account_api_get_ip_restriction(**ident)["ipRestrict"] == "true"
    as_key = Spot(api_key=created["apiKey"], api_secret=created["secretKey"], base_url=base_url)
    assert as_key.api_key_permissions()["enableSpotAndMarginTrading"] is True
    assert spot.sub_account_api_delete_ip(**ident, ipAddress="127.0.0.1")["ipList"] == []
    assert spot.sign_request("DELETE", "/sapi/v1/sub-account/subAccountApi", ident) == {}


def test_binance_connector_uses_a_self_generated_key(served):
    """The connector registers the public key (in the query string), then signs
    apiRestrictions with the private key."""
    emulator, base_url = served
    registrar = connector(base_url, emulator.master.api_key, emulator.master.secret)
    email = registrar.sub_account_create("selfgen")["email"]
    emulator.advance(1)  # about one new key per sub-account per second
    private, pem = new_ed25519()
    created = registrar.sign_request(
        "POST",
        "/sapi/v1/sub-account/subAccountApi",
        {
            "email": email,
            "apiName": "self",
            "status": 1,
            "publicKey": pem,
            "canFuturesTrade": "true",
        },
    )
    own = Spot(api_key=created["apiKey"], private_key=private_pem(private), base_url=base_url)
    assert own.api_key_permissions()["enableFutures"] is True
    emulator.advance(1)
    with pytest.raises(ClientError) as refused:
        registrar.sign_request(
            "POST",
            "/sapi/v1/sub-account/subAccountApi",
            {"email": email, "apiName": "rsa", "status": 1, "publicKey": new_rsa()[1]},
        )
    assert refused.value.error_code == -1100


def test_binance_connector_gets_binance_error_codes(served):
    emulator, base_url = served
    cases = [
        (Spot(api_key=emulator.master.api_key, api_secret="y" * 64, base_url=base_url), -1022),
        (Spot(api_key="B" * 64, api_secret="y" * 64, base_url=base_url), -2015),
    ]
    for spot, code in cases:
        with pytest.raises(ClientError) as refused:
            spot.sub_account_list()
        assert refused.value.error_code == code
    spot = Spot(
        api_key=emulator.master.api_key, api_secret=emulator.master.secret, base_url=base_url
    )
    with pytest.raises(ClientError) as refused:
        spot.sign_request("GET", "/sapi/v1/sub-account/subAccountApi", {})
    assert refused.value.error_code == -1102
    emulator.advance(30)
    with pytest.raises(ClientError) as refused:
        spot.sub_account_list()
    assert refused.value.error_code == -1021


def test_official_sdk_creates_an_ed25519_key_against_emulator_serve(tmp_path):
    """The official SDK sends every v1 parameter in the query string, publicKey included."""
    served = Served(tmp_path / "sandbox-server.json")
    try:
        config = ConfigurationRestAPI(
            api_key=served.api_key, api_secret=served.secret, base_path=served.base_url
        )
        sdk = SubAccount(config).rest_api
        email = sdk.create_a_virtual_sub_account(sub_account_string="sdk").data().email
        private, pem = new_ed25519()
        created = sdk.create_sub_account_api_key(
            email=email, api_name="sdk bot", status=1, can_trade=True, public_key=pem
        ).data()
        assert created.api_key and not getattr(created, "secret_key", None)
        own = Spot(
            api_key=created.api_key, private_key=private_pem(private), base_url=served.base_url
        )
        assert own.api_key_permissions()["enableSpotAndMarginTrading"] is True
        _drive_every_key_endpoint(sdk, email, created.api_key)
    finally:
        assert served.stop() == 0


def _drive_every_key_endpoint(sdk, email: str, api_key: str) -> None:
    """The official SDK's calls for every other sub-account key endpoint, in one lifecycle."""
    ident = {"email": email, "sub_account_api_key": api_key}
    listed = sdk.query_sub_account_list(email=email).data().model_dump(by_alias=True)
    assert listed["subAccounts"][0]["email"] == email
    rows = sdk.query_sub_account_api_key(**ident).data().model_dump(by_alias=True)
    assert [r["apikey"] for r in rows["rows"]] == [api_key]
    changed = sdk.modify_sub_account_api_key_permission(
        **ident, can_trade=True, can_futures_trade=True
    )
    assert changed.data().model_dump(by_alias=True)["canFuturesTrade"] is True
    sdk.add_ip_restriction_for_sub_account_api_key(**ident, status=2, ip_address="203.0.113.10")
    seen = (
        sdk.get_ip_restriction_for_a_sub_account_api_key(**ident).data().model_dump(by_alias=True)
    )
    assert seen["ipRestrict"] == "true" and seen["ipList"] == ["203.0.113.10"]
    sdk.delete_ip_list_for_a_sub_account_api_key(**ident, ip_address="203.0.113.10")
    sdk.delete_sub_account_api_key(**ident)
    left = sdk.query_sub_account_api_key(email=email).data().model_dump(by_alias=True)
    assert not left.get("rows")
