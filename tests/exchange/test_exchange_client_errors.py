"""Error mapping, retries, time resync and rate-limit handling of the client."""

from __future__ import annotations

import httpx
import pytest

from orchestrator.exchange import client as client_module
from orchestrator.exchange import errors
from orchestrator.exchange.models import Permission

EMAIL = "quant@example.com"
SUB_KEY = "SubKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
LIST = "/sapi/v1/sub-account/subAccountApi"
IPS = "/sapi/v1/sub-account/subAccountApi/ipRestriction"
CREATED = {"apiName": "orc-a-g1", "apiKey": SUB_KEY, "secretKey": "s", "status": 1}


def _error(status: int, code: int, msg: str = "boom") -> httpx.Response:
    return httpx.Response(status, json={"code": code, "msg": msg})


async def _create(client):
    return await client.create_api_key(EMAIL, "orc-a-g1", frozenset({Permission.SPOT}), [])


@pytest.mark.parametrize(
    "code, kind, hint",
    [
        (-1022, errors.InvalidSignature, "signed as HMAC or vice versa"),
        (-2014, errors.InvalidApiKeyFormat, "BINANCE_API_KEY"),
        (-2015, errors.Unauthorized, "not in the master key's whitelist"),
        (-1100, errors.BadRequest, "refused a parameter"),
        (-1101, errors.BadRequest, "refused a parameter"),
        (-1102, errors.BadRequest, "refused a parameter"),
        (-1104, errors.BadRequest, "refused a parameter"),
        (-1105, errors.BadRequest, "refused a parameter"),
        (-1106, errors.BadRequest, "refused a parameter"),
        (-9000, errors.Unsupported, "sub-account of this master account"),
        (-3041, errors.ApiError, None),
    ],
)
async def test_error_codes_map_to_types_with_hints(mock, make_client, code, kind, hint):
    route = mock.get(IPS).mock(return_value=_error(400, code, "Binance says no."))
    client = make_client()
    with pytest.raises(kind) as caught:
        await client.get_ip_restriction(EMAIL, SUB_KEY)
    error = caught.value
    assert type(error) is kind and error.code == code and error.http_status == 400
    assert error.endpoint == "get_ip_restriction" and "Binance says no (Binance code" in str(error)
    if hint:
        assert hint in error.hint and hint in str(error)
    assert route.call_count == 1, "client errors are not retried"


@pytest.mark.parametrize("code", sorted(errors.ERROR_KINDS), ids=str)
async def test_every_code_in_the_table_maps_to_its_type_with_a_hint(mock, make_client, code):
    """An HTTP status in the table (429, 418) is answered bare, a Binance code in a 400 body."""
    kind = errors.ERROR_KINDS[code]
    assert kind.hint and kind.hint.strip(), f"code {code} has no hint"
    answer = httpx.Response(code) if code > 0 else _error(400, code, "Binance says no.")
    mock.get("/api/v3/time").respond(json={"serverTime": 1})
    mock.get(IPS).mock(return_value=answer)
    with pytest.raises(errors.ExchangeError) as caught:
        await make_client(rate_limit_retries=0).get_ip_restriction(EMAIL, SUB_KEY)
    error = caught.value
    assert type(error) is kind.type
    assert error.hint == kind.hint_for(master_key=True) and error.hint in str(error)


def test_a_code_outside_the_table_is_a_plain_api_error_without_a_hint():
    assert -3041 not in errors.ERROR_KINDS
    assert errors.error_kind(-3041) == errors.ErrorKind(errors.ApiError, None)


async def test_unauthorized_hint_mentions_permissions(mock, make_client):
    mock.get(IPS).mock(return_value=_error(401, -2015))
    with pytest.raises(errors.Unauthorized) as caught:
        await make_client().get_ip_restriction(EMAIL, SUB_KEY)
    assert "'Enable Reading'" in caught.value.hint
    assert "sub-account key management" in caught.value.hint


async def test_unauthorized_with_another_signer_blames_that_key(mock, make_client):
    from orchestrator.exchange.signing import HmacSigner

    mock.get("/sapi/v1/account/apiRestrictions").mock(return_value=_error(401, -2015))
    with pytest.raises(errors.Unauthorized) as caught:
        await make_client().api_restrictions(HmacSigner(SUB_KEY, "x"))
    assert "master" not in caught.value.hint


async def test_api_key_in_a_binance_message_is_masked(mock, make_client, helpers):
    mock.get(IPS).mock(return_value=_error(401, -2015, f"bad key {helpers.MASTER_KEY}"))
    with pytest.raises(errors.Unauthorized) as caught:
        await make_client().get_ip_restriction(EMAIL, SUB_KEY)
    assert helpers.MASTER_KEY not in str(caught.value)
    assert "Mast…opqr" in str(caught.value)


async def test_timestamp_error_resyncs_once_and_retries(mock, make_client, helpers):
    server_ms = int(helpers.START * 1000) + 9_000
    time_route = mock.get("/api/v3/time").respond(json={"serverTime": server_ms})
    route = mock.post(LIST).mock(
        side_effect=[_error(400, -1021), httpx.Response(200, json=CREATED)]
    )
    client = make_client()
    created = await _create(client)
    assert created.api_key == SUB_KEY
    assert time_route.call_count == 1 and route.call_count == 2
    retried = helpers.params_of(route.calls.last.request.content.decode())
    assert retried["timestamp"] == str(server_ms)
    assert client.time_offset_ms == 9_000


async def test_timestamp_error_that_never_clears_fails_the_call_with_a_clock_hint(
    mock, make_client
):
    mock.get("/api/v3/time").respond(json={"serverTime": 1})
    route = mock.get(IPS).mock(return_value=_error(400, -1021))
    with pytest.raises(errors.TimestampOutOfWindow) as caught:
        await make_client().get_ip_restriction(EMAIL, SUB_KEY)
    assert "NTP" in caught.value.hint
    assert route.call_count == 1 + client_module.TIMESTAMP_RESENDS


async def test_read_retries_5xx_then_succeeds(mock, make_client, vtime):
    route = mock.get(IPS).mock(
        side_effect=[
            httpx.Response(500),
            httpx.Response(503, text="<html>down</html>"),
            httpx.Response(200, json={"ipRestrict": "false", "ipList": []}),
        ]
    )
    client = make_client()
    result = await client.get_ip_restriction(EMAIL, SUB_KEY)
    assert not result.restricted
    assert route.call_count == 3 and client.call_counts() == {"get_ip_restriction": 3}
    assert len(vtime.sleeps) == 2, "jittered backoff between attempts"


async def test_read_gives_up_after_read_retries(mock, make_client):
    route = mock.get(IPS).mock(return_value=httpx.Response(502))
    with pytest.raises(errors.ServerError) as caught:
        await make_client(read_retries=2).get_ip_restriction(EMAIL, SUB_KEY)
    assert route.call_count == 3 and caught.value.http_status == 502


async def test_read_network_errors_are_retried_then_raised(mock, make_client):
    route = mock.get(IPS).mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(errors.NetworkError):
        await make_client(read_retries=1).get_ip_restriction(EMAIL, SUB_KEY)
    assert route.call_count == 2


@pytest.mark.parametrize(
    "outcome",
    [
        httpx.Response(500),
        httpx.Response(503, json={"code": -1001, "msg": "Internal error"}),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx.ReadError("connection reset"),
    ],
    ids=["500", "503", "read-timeout", "remote-protocol", "reset"],
)
async def test_write_failure_after_sending_is_ambiguous_and_not_retried(mock, make_client, outcome):
    kwargs = (
        {"side_effect": outcome} if isinstance(outcome, Exception) else {"return_value": outcome}
    )
    route = mock.post(LIST).mock(**kwargs)
    client = make_client()
    with pytest.raises(errors.AmbiguousOutcome) as caught:
        await _create(client)
    assert route.call_count == 1, "a write that may have arrived is never resent"
    assert client.call_counts() == {"create_api_key": 1}
    assert "may or may not have happened" in str(caught.value)
    assert "reconcile" in str(caught.value)


async def test_delete_5xx_is_ambiguous_too(mock, make_client):
    route = mock.delete(LIST).mock(return_value=httpx.Response(504))
    with pytest.raises(errors.AmbiguousOutcome):
        await make_client().delete_api_key(EMAIL, SUB_KEY)
    assert route.call_count == 1


async def test_write_connect_error_is_retried_because_nothing_was_sent(mock, make_client):
    route = mock.post(LIST).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=CREATED)]
    )
    client = make_client()
    assert (await _create(client)).api_key == SUB_KEY
    assert route.call_count == 2
    assert client.call_counts() == {"create_api_key": 1}, "the refused attempt never went out"


async def test_connect_errors_exhausted_raise_network_error(mock, make_client):
    mock.post(LIST).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(errors.ConnectFailed) as caught:
        await _create(make_client(read_retries=2))
    assert isinstance(caught.value, errors.NetworkError)
    assert not isinstance(caught.value, errors.AmbiguousOutcome)


async def test_429_waits_for_retry_after_then_retries(mock, make_client, vtime):
    route = mock.post(LIST).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0.4"}, json={"code": -1003, "msg": "x"}),
            httpx.Response(200, json=CREATED),
        ]
    )
    client = make_client(key_creation_interval_s=0)  # no per-sub-account pace in the way
    assert (await _create(client)).api_key == SUB_KEY
    assert route.call_count == 2
    assert vtime.sleeps == [pytest.approx(0.4)]
    assert client.rate_limited_counts() == {"create_api_key": 1}
    assert client.call_counts() == {"create_api_key": 2}


async def test_1003_in_a_400_body_is_rate_limiting(mock, make_client, vtime):
    route = mock.get(IPS).mock(
        side_effect=[
            httpx.Response(400, headers={"Retry-After": "2"}, json={"code": -1003, "msg": "x"}),
            httpx.Response(200, json={"ipRestrict": "false"}),
        ]
    )
    client = make_client()
    await client.get_ip_restriction(EMAIL, SUB_KEY)
    assert route.call_count == 2 and vtime.sleeps == [2.0]


async def test_429_without_retry_after_waits_for_the_next_window(mock, make_client, vtime):
    mock.get(IPS).mock(
        side_effect=[httpx.Response(429), httpx.Response(200, json={"ipRestrict": "false"})]
    )
    client = make_client()
    await client.get_ip_restriction(EMAIL, SUB_KEY)
    # START is 10 s into a window
    assert vtime.sleeps == [pytest.approx(50.0 + client.pacer.guard_s)]


async def test_429_retries_are_bounded(mock, make_client):
    route = mock.get(IPS).mock(return_value=httpx.Response(429, headers={"Retry-After": "1"}))
    client = make_client(rate_limit_retries=2)
    with pytest.raises(errors.RateLimited) as caught:
        await client.get_ip_restriction(EMAIL, SUB_KEY)
    assert route.call_count == 3 and caught.value.retry_after == 1.0
    assert client.rate_limited_counts() == {"get_ip_restriction": 3}


async def test_418_is_an_ip_ban_and_not_retried(mock, make_client):
    route = mock.get(IPS).mock(return_value=httpx.Response(418, headers={"Retry-After": "120"}))
    with pytest.raises(errors.IpBanned) as caught:
        await make_client().get_ip_restriction(EMAIL, SUB_KEY)
    assert route.call_count == 1 and caught.value.retry_after == 120.0


async def test_non_json_read_answer_is_malformed(mock, make_client):
    mock.get(IPS).mock(return_value=httpx.Response(200, text="<html>"))
    with pytest.raises(errors.MalformedResponse) as caught:
        await make_client().get_ip_restriction(EMAIL, SUB_KEY)
    assert not isinstance(caught.value, errors.AmbiguousOutcome)


@pytest.mark.parametrize("body", [[], {"rows": "nope"}, {"rows": [{"apiName": "x"}]}, 3])
async def test_wrong_shape_read_answer_is_malformed(mock, make_client, body):
    mock.get(LIST).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(errors.MalformedResponse):
        await make_client().list_api_keys(EMAIL)


async def test_unreadable_write_answer_is_malformed_and_ambiguous(mock, make_client):
    route = mock.post(LIST).mock(return_value=httpx.Response(200, json={"apiName": "x"}))
    with pytest.raises(errors.MalformedWriteResponse) as caught:
        await _create(make_client())
    assert isinstance(caught.value, errors.AmbiguousOutcome)
    assert isinstance(caught.value, errors.MalformedResponse)
    assert route.call_count == 1


async def test_4xx_without_an_error_body_is_malformed(mock, make_client):
    mock.get(IPS).mock(return_value=httpx.Response(404, text="not found"))
    with pytest.raises(errors.MalformedResponse) as caught:
        await make_client().get_ip_restriction(EMAIL, SUB_KEY)
    assert caught.value.http_status == 404
