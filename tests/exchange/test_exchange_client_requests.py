"""The exact request the client sends for every endpoint, and how it reads the answers."""

from __future__ import annotations

import base64
from urllib.parse import unquote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.exchange.models import Permission
from orchestrator.exchange.signing import Ed25519Signer, generate_ed25519

EMAIL = "quant@example.com"
SUB_KEY = "SubKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
KEY_ROW = {
    "email": EMAIL,
    "apiName": "orc-QuantBot-g1",
    "apikey": SUB_KEY,
    "canTrade": True,
    "canMarginLoanRepay": False,
    "canFuturesTrade": True,
    "canUniversalTransfer": False,
    "canVanillaOptions": False,
    "timestamp": 1699999999000,
}


def _signed_query(request: httpx.Request, helpers) -> dict[str, str]:
    """The request's query, after checking header, placement and HMAC signature."""
    query = request.url.query.decode()
    assert request.headers["X-MBX-APIKEY"] == helpers.MASTER_KEY
    assert request.content == b""
    assert query.rsplit("&", 1)[1].startswith("signature=")
    assert helpers.hmac_ok(helpers.CANARY_SECRET, query)
    params = helpers.params_of(query)
    assert params["recvWindow"] == "5000"
    assert params["timestamp"] == str(int(helpers.START * 1000))
    return params


def _signed_body(request: httpx.Request, helpers) -> dict[str, str]:
    body = request.content.decode()
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["X-MBX-APIKEY"] == helpers.MASTER_KEY
    assert request.url.query == b""
    assert body.rsplit("&", 1)[1].startswith("signature=")
    assert helpers.hmac_ok(helpers.CANARY_SECRET, body)
    return helpers.params_of(body)


def _without_auth(params: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in ("timestamp", "recvWindow", "signature")}


async def test_server_time_is_unsigned(mock, make_client):
    route = mock.get("/api/v3/time").respond(json={"serverTime": 1499827319559})
    client = make_client()
    assert await client.server_time() == 1499827319559
    request = route.calls.last.request
    assert request.url.query == b"" and "X-MBX-APIKEY" not in request.headers
    assert client.call_counts() == {"server_time": 1}


async def test_sync_time_offset_goes_into_timestamps(mock, make_client, helpers):
    server_ms = int(helpers.START * 1000) + 7_000
    mock.get("/api/v3/time").respond(json={"serverTime": server_ms})
    route = mock.get("/sapi/v1/sub-account/list").respond(json={"subAccounts": []})
    client = make_client()
    assert await client.sync_time() == 7_000
    await client.list_subaccounts()
    params = helpers.params_of(route.calls.last.request.url.query.decode())
    assert params["timestamp"] == str(server_ms)


async def test_create_virtual_subaccount(mock, make_client, helpers):
    route = mock.post("/sapi/v1/sub-account/virtualSubAccount").respond(
        json={"email": "copytrade_virtual@abc.com"}
    )
    email = await make_client().create_virtual_subaccount("copytrade")
    assert email == "copytrade_virtual@abc.com"
    assert _without_auth(_signed_body(route.calls.last.request, helpers)) == {
        "subAccountString": "copytrade"
    }


async def test_list_subaccounts(mock, make_client, helpers):
    route = mock.get("/sapi/v1/sub-account/list").respond(
        json={
            "subAccounts": [
                {
                    "email": EMAIL,
                    "subUserId": 42,
                    "isFreeze": False,
                    "createTime": 1689744671462,
                    "isManagedSubAccount": False,
                    "isAssetManagementSubAccount": False,
                }
            ]
        }
    )
    rows = await make_client().list_subaccounts(email=EMAIL, page=2, limit=50)
    assert rows[0].email == EMAIL and rows[0].sub_user_id == 42
    assert rows[0].create_time == 1689744671462
    params = _signed_query(route.calls.last.request, helpers)
    assert _without_auth(params) == {"email": EMAIL, "page": "2", "limit": "50"}
    assert "email=quant%40example.com&page=2&limit=50&recvWindow" in (
        route.calls.last.request.url.query.decode()
    )


async def test_list_api_keys_reads_rows(mock, make_client, helpers):
    route = mock.get("/sapi/v1/sub-account/subAccountApi").respond(
        json={"total": 1, "rows": [KEY_ROW]}
    )
    page = await make_client().list_api_keys(EMAIL, api_key=SUB_KEY, page=1, size=100)
    assert page.total == 1
    key = page.rows[0]
    assert (key.email, key.api_name, key.api_key) == (EMAIL, "orc-QuantBot-g1", SUB_KEY)
    assert key.permissions == {Permission.SPOT, Permission.FUTURES}
    assert key.created_ms == 1699999999000
    params = _signed_query(route.calls.last.request, helpers)
    assert _without_auth(params) == {
        "email": EMAIL,
        "subAccountApiKey": SUB_KEY,
        "page": "1",
        "size": "100",
    }


async def test_list_api_keys_reads_list_and_string_flags(mock, make_client):
    row = {**KEY_ROW, "canTrade": "true", "canFuturesTrade": "false"}
    row.pop("email")
    mock.get("/sapi/v1/sub-account/subAccountApi").respond(json={"total": 1, "list": [row]})
    page = await make_client().list_api_keys(EMAIL)
    assert page.rows[0].permissions == {Permission.SPOT}
    assert page.rows[0].email == EMAIL


async def test_create_hmac_key_with_ips(mock, make_client, helpers):
    route = mock.post("/sapi/v1/sub-account/subAccountApi").respond(
        json={
            "apiName": "orc-QuantBot-g1",
            "apiKey": SUB_KEY,
            "secretKey": "SubSecret-abcdef",
            "canTrade": True,
            "canMarginLoanRepay": False,
            "canFuturesTrade": True,
            "canUniversalTransfer": False,
            "canVanillaOptions": False,
            "status": "2",
            "ipList": ["203.0.113.10", "198.51.100.7"],
        }
    )
    created = await make_client().create_api_key(
        EMAIL,
        "orc-QuantBot-g1",
        frozenset({Permission.SPOT, Permission.FUTURES}),
        ["203.0.113.10", "198.51.100.7"],
    )
    assert created.api_key == SUB_KEY and created.restricted
    assert created.ips == ("203.0.113.10", "198.51.100.7")
    assert created.secret.get_secret_value() == "SubSecret-abcdef"
    assert "SubSecret" not in repr(created)
    params = _signed_body(route.calls.last.request, helpers)
    assert _without_auth(params) == {
        "email": EMAIL,
        "apiName": "orc-QuantBot-g1",
        "status": "2",
        "canTrade": "true",
        "canMarginLoanRepay": "false",
        "canFuturesTrade": "true",
        "canUniversalTransfer": "false",
        "canVanillaOptions": "false",
        "ipAddress": "203.0.113.10,198.51.100.7",
    }


async def test_create_ed25519_key_puts_public_key_in_the_body(mock, make_client, helpers):
    _, public_pem = generate_ed25519()
    route = mock.post("/sapi/v1/sub-account/subAccountApi").respond(
        json={"apiName": "orc-Koinly-g1", "apiKey": SUB_KEY, "canTrade": False, "status": 1}
    )
    created = await make_client().create_api_key(
        EMAIL, "orc-Koinly-g1", frozenset(), [], public_key_pem=public_pem
    )
    assert created.secret is None and not created.restricted and created.ips == ()
    request = route.calls.last.request
    params = _signed_body(request, helpers)
    assert params["publicKey"] == public_pem
    assert params["status"] == "1" and "ipAddress" not in params
    assert b"publicKey" not in request.url.raw_path


async def test_create_key_without_ip_list_in_answer_falls_back_to_the_request(mock, make_client):
    mock.post("/sapi/v1/sub-account/subAccountApi").respond(
        json={"apiName": "n", "apiKey": SUB_KEY, "status": 2}
    )
    created = await make_client().create_api_key(
        EMAIL, "n", frozenset({Permission.SPOT}), ["203.0.113.10"]
    )
    assert created.ips == ("203.0.113.10",) and created.permissions == {Permission.SPOT}


async def test_delete_api_key(mock, make_client, helpers):
    route = mock.delete("/sapi/v1/sub-account/subAccountApi").respond(json={})
    assert await make_client().delete_api_key(EMAIL, SUB_KEY) is None
    params = _signed_query(route.calls.last.request, helpers)
    assert _without_auth(params) == {"email": EMAIL, "subAccountApiKey": SUB_KEY}


async def test_set_permissions(mock, make_client, helpers):
    route = mock.post("/sapi/v1/sub-account/subAccountApiPermission").respond(
        json={"apiName": "n", "canTrade": True}
    )
    await make_client().set_permissions(EMAIL, SUB_KEY, frozenset({Permission.OPTIONS}))
    params = _signed_body(route.calls.last.request, helpers)
    assert _without_auth(params) == {
        "email": EMAIL,
        "subAccountApiKey": SUB_KEY,
        "canTrade": "false",
        "canMarginLoanRepay": "false",
        "canFuturesTrade": "false",
        "canUniversalTransfer": "false",
        "canVanillaOptions": "true",
    }


async def test_add_ip_restriction_uses_v2(mock, make_client, helpers):
    route = mock.post("/sapi/v2/sub-account/subAccountApi/ipRestriction").respond(
        json={
            "status": "2",
            "ipList": ["203.0.113.10", "203.0.113.11"],
            "updateTime": 1636371437000,
            "apiKey": SUB_KEY,
        }
    )
    result = await make_client().add_ip_restriction(
        EMAIL, SUB_KEY, ["203.0.113.10", "203.0.113.11"]
    )
    assert result.restricted and result.ips == ("203.0.113.10", "203.0.113.11")
    assert result.update_time == 1636371437000
    params = _signed_body(route.calls.last.request, helpers)
    assert _without_auth(params) == {
        "email": EMAIL,
        "subAccountApiKey": SUB_KEY,
        "status": "2",
        "ipAddress": "203.0.113.10,203.0.113.11",
    }


async def test_remove_ip_restriction_sets_status_1(mock, make_client, helpers):
    route = mock.post("/sapi/v2/sub-account/subAccountApi/ipRestriction").respond(
        json={"status": "1", "ipList": [], "updateTime": 1, "apiKey": SUB_KEY}
    )
    result = await make_client().remove_ip_restriction(EMAIL, SUB_KEY)
    assert not result.restricted and result.ips == ()
    params = _signed_body(route.calls.last.request, helpers)
    assert _without_auth(params) == {"email": EMAIL, "subAccountApiKey": SUB_KEY, "status": "1"}


@pytest.mark.parametrize("flag, expected", [("true", True), ("false", False), (True, True)])
async def test_get_ip_restriction_reads_string_or_bool(mock, make_client, helpers, flag, expected):
    route = mock.get("/sapi/v1/sub-account/subAccountApi/ipRestriction").respond(
        json={"ipRestrict": flag, "ipList": ["203.0.113.10"], "updateTime": 5, "apiKey": SUB_KEY}
    )
    result = await make_client().get_ip_restriction(EMAIL, SUB_KEY)
    assert result.restricted is expected and result.api_key == SUB_KEY
    params = _signed_query(route.calls.last.request, helpers)
    assert _without_auth(params) == {"email": EMAIL, "subAccountApiKey": SUB_KEY}


async def test_get_ip_restriction_without_ip_list(mock, make_client):
    mock.get("/sapi/v1/sub-account/subAccountApi/ipRestriction").respond(
        json={"ipRestrict": "false", "updateTime": 5}
    )
    result = await make_client().get_ip_restriction(EMAIL, SUB_KEY)
    assert result.ips == () and result.api_key == SUB_KEY


async def test_delete_ips(mock, make_client, helpers):
    route = mock.delete("/sapi/v1/sub-account/subAccountApi/ipRestriction/ipList").respond(
        json={"ipRestrict": "true", "ipList": ["203.0.113.11"], "updateTime": 6, "apiKey": SUB_KEY}
    )
    result = await make_client().delete_ips(EMAIL, SUB_KEY, ["203.0.113.10"])
    assert result.ips == ("203.0.113.11",)
    params = _signed_query(route.calls.last.request, helpers)
    assert _without_auth(params) == {
        "email": EMAIL,
        "subAccountApiKey": SUB_KEY,
        "ipAddress": "203.0.113.10",
    }


async def test_api_restrictions_is_signed_with_the_given_key(mock, make_client):
    private_key = Ed25519PrivateKey.generate()
    sub_signer = Ed25519Signer(SUB_KEY, private_key)
    route = mock.get("/sapi/v1/account/apiRestrictions").respond(
        json={
            "ipRestrict": False,
            "createTime": 1698645219000,
            "enableReading": True,
            "enableWithdrawals": False,
            "enableInternalTransfer": False,
            "enableMargin": False,
            "enableFutures": True,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
            "enableSpotAndMarginTrading": True,
        }
    )
    result = await make_client().api_restrictions(sub_signer)
    assert result.enable_reading and not result.enable_withdrawals
    assert result.permissions == {Permission.SPOT, Permission.FUTURES}
    request = route.calls.last.request
    assert request.headers["X-MBX-APIKEY"] == SUB_KEY
    query = request.url.query.decode()
    payload, _, encoded_signature = query.rpartition("&signature=")
    assert not set("+/=") & set(encoded_signature), "base64 signature must be URL-encoded"
    signature = base64.b64decode(unquote(encoded_signature))
    private_key.public_key().verify(signature, payload.encode())


async def test_list_all_subaccounts_pages_until_a_short_page(mock, make_client, helpers):
    def page(request: httpx.Request) -> httpx.Response:
        number = int(helpers.params_of(request.url.query.decode())["page"])
        count = 200 if number < 3 else 7
        rows = [{"email": f"s{number}-{i}@x.com"} for i in range(count)]
        return httpx.Response(200, json={"subAccounts": rows})

    route = mock.get("/sapi/v1/sub-account/list").mock(side_effect=page)
    rows = await make_client().list_all_subaccounts()
    assert len(rows) == 407 and route.call_count == 3
    limits = {helpers.params_of(c.request.url.query.decode())["limit"] for c in route.calls}
    assert limits == {"200"}


async def test_list_all_api_keys_pages_until_a_short_page(mock, make_client, helpers):
    def page(request: httpx.Request) -> httpx.Response:
        params = helpers.params_of(request.url.query.decode())
        assert params["size"] == "100"
        count = 100 if params["page"] == "1" else 3
        rows = [{**KEY_ROW, "apikey": f"k{params['page']}-{i}"} for i in range(count)]
        return httpx.Response(200, json={"total": 0, "rows": rows})

    route = mock.get("/sapi/v1/sub-account/subAccountApi").mock(side_effect=page)
    client = make_client()
    keys = await client.list_all_api_keys(EMAIL)
    assert len(keys) == 103 and route.call_count == 2
    assert client.call_counts() == {"list_api_keys": 2}


async def test_list_all_api_keys_stops_when_total_is_reached(mock, make_client):
    rows = [{**KEY_ROW, "apikey": f"k{i}"} for i in range(100)]
    route = mock.get("/sapi/v1/sub-account/subAccountApi").respond(
        json={"total": 100, "rows": rows}
    )
    assert len(await make_client().list_all_api_keys(EMAIL)) == 100
    assert route.call_count == 1


async def test_source_ip_header_is_sent(mock, make_client):
    route = mock.get("/sapi/v1/sub-account/list").respond(json={"subAccounts": []})
    await make_client(source_ip_header={"X-Forwarded-For": "203.0.113.10"}).list_subaccounts()
    assert route.calls.last.request.headers["X-Forwarded-For"] == "203.0.113.10"


async def test_context_manager_closes(mock, helpers, master):
    from orchestrator.exchange.client import BinanceClient

    mock.get("/api/v3/time").respond(json={"serverTime": 1})
    async with BinanceClient(helpers.BASE, master) as client:
        assert await client.server_time() == 1
    assert client._http.is_closed


async def test_parameters_are_percent_encoded_before_signing(mock, make_client, helpers):
    """A space is %20 (never '+'), everything but [-_.~A-Za-z0-9] is encoded (UTF-8), and
    the signature covers exactly the bytes sent."""
    route = mock.post("/sapi/v1/sub-account/subAccountApi").respond(
        json={"apiName": "a b~c", "apiKey": SUB_KEY, "secretKey": "s", "status": 1}
    )
    await make_client().create_api_key("dé v+1@example.com", "a b~c", frozenset(), [])
    body = route.calls.last.request.content.decode("ascii")
    assert body.startswith("email=d%C3%A9%20v%2B1%40example.com&apiName=a%20b~c&status=1&")
    assert "+" not in body
    assert helpers.hmac_ok(helpers.CANARY_SECRET, body)
    assert helpers.params_of(body)["email"] == "dé v+1@example.com"


@pytest.mark.parametrize(
    "answer, restricted, ips",
    [
        ({"status": "1", "updateTime": 1, "apiKey": SUB_KEY}, False, ()),
        ({"status": 2, "updateTime": 1, "apiKey": SUB_KEY}, True, ()),
        ({"status": "2", "ipList": ["203.0.113.10"], "updateTime": 1}, True, ("203.0.113.10",)),
    ],
)
async def test_v2_ip_answer_without_ip_list_or_with_an_integer_status(
    mock, make_client, answer, restricted, ips
):
    """`ipList` comes only when the call restricts the key and gives IPs; `status` is
    documented as a string but read as an integer too."""
    mock.post("/sapi/v2/sub-account/subAccountApi/ipRestriction").respond(json=answer)
    result = await make_client().remove_ip_restriction(EMAIL, SUB_KEY)
    assert (result.restricted, result.ips, result.api_key) == (restricted, ips, SUB_KEY)


async def test_key_rows_with_api_key_spelled_either_way(mock, make_client):
    rows = [KEY_ROW, {**{k: v for k, v in KEY_ROW.items() if k != "apikey"}, "apiKey": "K2"}]
    mock.get("/sapi/v1/sub-account/subAccountApi").respond(json={"total": 2, "list": rows})
    page = await make_client().list_api_keys(EMAIL)
    assert [row.api_key for row in page.rows] == [SUB_KEY, "K2"]
