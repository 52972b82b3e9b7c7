"""-1021 (timestamp outside recvWindow): resync, re-sign with a fresh timestamp, resend.

Binance refuses such a request before acting on it, so resending is safe even for a create,
and a run never stops on it. A client is not closed under a request on the wire.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import SecretStr

from orchestrator.emulator.core import Emulator
from orchestrator.emulator.transport import EmulatorTransport
from orchestrator.exchange.client import BinanceClient
from orchestrator.exchange.errors import AmbiguousOutcome
from orchestrator.exchange.models import Permission
from orchestrator.exchange.signing import HmacSigner

EMAIL = "quant@example.com"
SUB_KEY = "SubKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
LIST = "/sapi/v1/sub-account/subAccountApi"
IPS = "/sapi/v1/sub-account/subAccountApi/ipRestriction"
CREATED = {"apiName": "orc-a-g1", "apiKey": SUB_KEY, "secretKey": "s", "status": 1}
NO_IPS = {"ipRestrict": "false", "ipList": [], "updateTime": 1, "apiKey": SUB_KEY}
SKEW_MS = 9_000


def _refused() -> httpx.Response:
    return httpx.Response(400, json={"code": -1021, "msg": "outside of the recvWindow."})


async def _create(client: BinanceClient):
    return await client.create_api_key(EMAIL, "orc-a-g1", frozenset({Permission.SPOT}), [])


async def test_refused_create_is_resent_with_a_fresh_timestamp_and_signature(
    mock, make_client, helpers, vtime
):
    server_ms = int(helpers.START * 1000) + SKEW_MS
    mock.get("/api/v3/time").respond(json={"serverTime": server_ms})
    route = mock.post(LIST).mock(side_effect=[_refused(), httpx.Response(200, json=CREATED)])
    client = make_client()
    assert (await _create(client)).api_key == SUB_KEY
    first, resent = (helpers.params_of(c.request.content.decode()) for c in route.calls)
    assert int(resent["timestamp"]) == int(first["timestamp"]) + SKEW_MS
    assert resent["signature"] != first["signature"]
    assert helpers.hmac_ok(helpers.CANARY_SECRET, route.calls.last.request.content.decode())


async def test_two_refusals_in_a_row_after_a_resync_do_not_abort(mock, make_client, helpers):
    time_route = mock.get("/api/v3/time").respond(json={"serverTime": int(helpers.START * 1000)})
    route = mock.post(LIST).mock(
        side_effect=[_refused(), _refused(), _refused(), httpx.Response(200, json=CREATED)]
    )
    client = make_client()
    assert (await _create(client)).api_key == SUB_KEY
    assert route.call_count == 4 and time_route.call_count == 3
    windows = [helpers.params_of(c.request.content.decode())["recvWindow"] for c in route.calls]
    assert windows == ["5000", "5000", "10000", "20000"]  # wider once a resync did not help
    for call in route.calls:
        assert helpers.hmac_ok(helpers.CANARY_SECRET, call.request.content.decode())


@pytest.mark.parametrize(
    "answer_delay_s, requests_sent",
    [
        (0.005, 40),  # all 20 are on the wire before the first is refused: 20 resends
        (0.0, 21),  # the first is refused at once: the other 19 wait for the resync to sign
    ],
)
async def test_concurrent_requests_during_a_resync_share_it_and_all_complete(
    mock, make_client, helpers, vtime, answer_delay_s, requests_sent
):
    """Binance's clock is 9 s ahead. One resync (slow to answer) serves every refused request,
    and a request signed after it carries the new offset."""
    server_offset_ms = SKEW_MS
    time_answered = asyncio.Event()

    async def server_time(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)  # every refused request is waiting on this resync by now
        time_answered.set()
        return httpx.Response(200, json={"serverTime": int(vtime.now * 1000) + server_offset_ms})

    async def binance(request: httpx.Request) -> httpx.Response:
        if answer_delay_s:
            await asyncio.sleep(answer_delay_s)
        stamp = int(helpers.params_of(request.url.query.decode())["timestamp"])
        server_ms = int(vtime.now * 1000) + server_offset_ms
        return _refused() if server_ms - stamp > 5000 else httpx.Response(200, json=NO_IPS)

    time_route = mock.get("/api/v3/time").mock(side_effect=server_time)
    route = mock.get(IPS).mock(side_effect=binance)
    client = make_client()
    answers = await asyncio.gather(*(client.get_ip_restriction(EMAIL, SUB_KEY) for _ in range(20)))
    assert len(answers) == 20 and time_answered.is_set()
    assert time_route.call_count == 1, "concurrent refusals share one resync"
    assert route.call_count == requests_sent
    assert client.time_offset_ms == SKEW_MS


async def test_close_waits_for_a_request_on_the_wire(master):
    reached = asyncio.Event()
    answered: list[str] = []

    async def slow_binance(request: httpx.Request) -> httpx.Response:
        reached.set()
        await asyncio.sleep(0.05)
        answered.append(request.url.path)
        return httpx.Response(200, json=CREATED)

    client = BinanceClient(
        "https://api.binance.com", master, transport=httpx.MockTransport(slow_binance)
    )
    create = asyncio.create_task(_create(client))
    await reached.wait()
    await client.aclose()
    assert answered == [LIST]
    assert (await create).api_key == SUB_KEY


class _SignerOnALaggingPath:
    """Signs like the master, but the first `lagging` requests reach the emulator two minutes
    after they were signed (its clock jumps ahead as they are signed)."""

    def __init__(self, signer: HmacSigner, emulator: Emulator, lagging: int) -> None:
        self._signer = signer
        self._emulator = emulator
        self._lagging = lagging
        self.api_key = signer.api_key
        self.key_type = signer.key_type

    def sign(self, payload: bytes) -> str:
        if self._lagging:
            self._lagging -= 1
            self._emulator.advance(120)
        return self._signer.sign(payload)


@pytest.mark.parametrize("lagging", [1, 2, 3])
async def test_create_refused_for_its_timestamp_is_resent_and_makes_one_key(lagging):
    """-1021 is not an ambiguous outcome: the emulator, like Binance, checks the timestamp
    before it acts, so resending the create makes exactly one key, even when the resend after
    the resync is refused again."""
    emulator = Emulator(None)
    emulator.add_subaccount(EMAIL)
    master = HmacSigner(emulator.master.api_key, SecretStr(emulator.master.secret))
    signer = _SignerOnALaggingPath(master, emulator, lagging)
    transport = EmulatorTransport(emulator)
    async with BinanceClient("https://api.binance.com", signer, transport=transport) as client:
        try:
            created = await _create(client)
        except AmbiguousOutcome:  # pragma: no cover - the assertion below explains
            pytest.fail("a create refused with -1021 was treated as ambiguous")
        keys = await client.list_all_api_keys(EMAIL)
        assert [k.api_key for k in keys] == [created.api_key]
        counts = client.call_counts()
    assert counts["create_api_key"] == 1 + lagging
    assert counts["server_time"] == lagging
