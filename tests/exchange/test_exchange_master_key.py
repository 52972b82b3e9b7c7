"""The v2 create's exact request, the master key's own restrictions, and the hint for a master
key without 'Enable Spot & Margin Trading'."""

from __future__ import annotations

import httpx
import pytest

from orchestrator.exchange import endpoints as ep
from orchestrator.exchange import errors
from orchestrator.exchange.models import Permission
from orchestrator.exchange.signing import generate_ed25519

EMAIL = "quant@example.com"
SUB_KEY = "SubKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
V2 = "/sapi/v2/sub-account/subAccountApi"
CREATED = {
    "apiName": "orc-fix-g1",
    "apiKey": SUB_KEY,
    "canTrade": True,
    "canMarginLoanRepay": False,
    "canFuturesTrade": False,
    "canUniversalTransfer": False,
    "canVanillaOptions": False,
    "status": 2,
    "ipList": ["203.0.113.10"],
}
MASTER_TRADING = "enable 'Enable Spot & Margin Trading' on the master API key"


def test_v2_create_has_its_own_uid_budget():
    v1, v2 = ep.CREATE_API_KEY, ep.CREATE_API_KEY_V2
    assert (v2.method, v2.path, v2.weight, v2.limit) == ("POST", V2, 3000, "UID")
    assert v2.mutating and v2.budget == 180_000 and v2.calls_per_minute == 60
    assert v2.budget_key != v1.budget_key
    assert ep.BY_NAME["create_api_key_v2"] is v2


async def test_v2_create_sends_the_public_key_and_fix_flags_in_the_signed_body(
    mock, make_client, helpers
):
    _, public_pem = generate_ed25519()
    route = mock.post(V2).respond(json=CREATED)
    created = await make_client().create_api_key_v2(
        EMAIL,
        "orc-fix-g1",
        frozenset({Permission.SPOT}),
        ["203.0.113.10"],
        public_key_pem=public_pem,
        fix_api_trading=True,
        fix_api_reading=True,
    )
    assert created.api_key == SUB_KEY and created.secret is None and created.restricted
    request = route.calls.last.request
    assert request.url.query == b"" and b"publicKey" not in request.url.raw_path
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    body = request.content.decode()
    assert helpers.hmac_ok(helpers.CANARY_SECRET, body)
    params = helpers.params_of(body)
    assert params["publicKey"] == public_pem
    assert params["canFixApiTrading"] == "true" and params["canFixApiReading"] == "true"
    assert params["status"] == "2" and params["ipAddress"] == "203.0.113.10"
    assert params["canTrade"] == "true" and params["canFuturesTrade"] == "false"


async def test_v2_create_leaves_fix_flags_out_unless_asked(mock, make_client, helpers):
    route = mock.post(V2).respond(json={**CREATED, "secretKey": "s", "status": 1, "ipList": []})
    client = make_client()
    await client.create_api_key_v2(EMAIL, "orc-fix-g1", frozenset(), [])
    params = helpers.params_of(route.calls.last.request.content.decode())
    assert "canFixApiTrading" not in params and "publicKey" not in params
    assert client.call_counts() == {"create_api_key_v2": 1}


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.create_api_key(EMAIL, "orc-a-g1", frozenset(), []),
        lambda c: c.create_api_key_v2(EMAIL, "orc-a-g1", frozenset(), []),
        lambda c: c.create_virtual_subaccount("bot"),
        lambda c: c.add_ip_restriction(EMAIL, SUB_KEY, ["203.0.113.10"]),
        lambda c: c.delete_ips(EMAIL, SUB_KEY, ["203.0.113.10"]),
    ],
    ids=["create", "create_v2", "virtual", "ip_restriction", "delete_ips"],
)
async def test_refusal_where_binance_needs_master_trading_names_that_permission(
    mock, make_client, call
):
    refused = httpx.Response(
        401, json={"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
    )
    mock.route().mock(return_value=refused)
    with pytest.raises(errors.Unauthorized) as caught:
        await call(make_client())
    assert MASTER_TRADING in caught.value.hint and MASTER_TRADING in str(caught.value)


async def test_refusal_elsewhere_keeps_the_general_hint(mock, make_client):
    mock.get("/sapi/v1/sub-account/list").respond(401, json={"code": -2015, "msg": "no"})
    with pytest.raises(errors.Unauthorized) as caught:
        await make_client().list_subaccounts()
    assert "Spot & Margin" not in caught.value.hint


def test_the_master_trading_hint_comes_from_the_error_table():
    for name in ep.NEEDS_MASTER_TRADING:
        assert MASTER_TRADING in errors.error_kind(-2015, name).hint
    assert errors.error_kind(-2015, "list_api_keys") == errors.error_kind(-2015)


async def test_master_restrictions_are_signed_with_the_master_key(mock, make_client, helpers):
    route = mock.get("/sapi/v1/account/apiRestrictions").respond(
        json={
            "ipRestrict": False,
            "createTime": 1,
            "enableReading": True,
            "enableSpotAndMarginTrading": True,
            "enableWithdrawals": True,
        }
    )
    found = await make_client().master_restrictions()
    assert found.enable_withdrawals and not found.ip_restrict
    assert found.permissions == {Permission.SPOT}
    assert route.calls.last.request.headers["X-MBX-APIKEY"] == helpers.MASTER_KEY
