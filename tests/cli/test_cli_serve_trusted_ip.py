"""`emulator serve --trusted-ip-header`: a whitelisted sub-account key can be tried from here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.exchange.client import BinanceClient
from orchestrator.exchange.errors import Unauthorized
from orchestrator.exchange.models import Permission
from orchestrator.exchange.signing import HmacSigner
from tests.cli.conftest import emulator_serve


@pytest.fixture
def trusting_server(tmp_path: Path, env):
    data = tmp_path / "emu.json"
    with emulator_serve(data, env, "--trusted-ip-header", "X-Forwarded-For") as (url, _):
        yield url


def test_whitelisted_key_answers_only_from_a_listed_ip(trusting_server, credentials):
    master = HmacSigner(
        credentials["BINANCE_API_KEY"], SecretStr(credentials["BINANCE_API_SECRET"])
    )

    async def scenario():
        async with BinanceClient(trusting_server, master) as client:
            email = await client.create_virtual_subaccount("trusted")
            key = await client.create_api_key(
                email, "bot", frozenset({Permission.SPOT}), ["203.0.113.10"]
            )
        sub = HmacSigner(key.api_key, key.secret)
        listed = {"X-Forwarded-For": "203.0.113.10"}
        async with BinanceClient(trusting_server, master, source_ip_header=listed) as client:
            seen = await client.api_restrictions(sub)
        async with BinanceClient(trusting_server, master) as client:
            with pytest.raises(Unauthorized):
                await client.api_restrictions(sub)
        return seen

    assert asyncio.run(scenario()).permissions == {Permission.SPOT}
