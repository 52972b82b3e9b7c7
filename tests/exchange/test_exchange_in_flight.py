"""A request is signed only when a connection slot is free, so queueing never stales it."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs

import httpx
from pydantic import SecretStr

from orchestrator.exchange import client as client_module
from orchestrator.exchange.client import BinanceClient
from orchestrator.exchange.signing import HmacSigner

RESTRICTIONS = {
    "ipRestrict": False,
    "createTime": 1,
    "enableReading": True,
    "enableSpotAndMarginTrading": False,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "enableMargin": False,
    "enableFutures": False,
    "permitsUniversalTransfer": False,
    "enableVanillaOptions": False,
}


async def test_queued_requests_are_signed_when_sent(monkeypatch):
    monkeypatch.setattr(client_module, "MAX_IN_FLIGHT", 5)
    ages_ms: list[float] = []
    in_flight = 0
    most = 0

    async def slow_binance(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        stamp = int(parse_qs(request.url.query.decode())["timestamp"][0])
        ages_ms.append(time.time() * 1000 - stamp)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return httpx.Response(200, json=RESTRICTIONS)

    signer = HmacSigner("A" * 64, SecretStr("s" * 64))
    transport = httpx.MockTransport(slow_binance)
    async with BinanceClient("https://api.binance.com", signer, transport=transport) as client:
        await asyncio.gather(*(client.api_restrictions(signer) for _ in range(40)))
    assert most <= 5
    # 40 calls / 5 slots x 50 ms = 400 ms of queueing: signed before it, the last would be 350 ms
    # old; the margin is for a loaded machine
    assert max(ages_ms) < 200
