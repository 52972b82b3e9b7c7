"""Contract fixtures: the real `BinanceClient` against the emulator, in-process and over HTTP.

Every contract test takes `world`, parametrized over the two ways the client reaches the
emulator: `EmulatorTransport` (the sandbox) and a loopback server from `start_in_thread`
(what `emulator serve` runs), and over the two meanings of the v2 IP-restriction call (it adds
to the whitelist or replaces it; Binance does not document which), so the client is shown to
end right either way. The emulator trusts `X-Test-Client-IP` as the caller's IP, so
one test can speak from any IPv4 address through the client's `source_ip_header`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from orchestrator.emulator.core import Emulator
from orchestrator.emulator.server import start_in_thread
from orchestrator.emulator.transport import EmulatorTransport
from orchestrator.exchange.client import BinanceClient
from orchestrator.exchange.interface import Signer
from orchestrator.exchange.signing import HmacSigner

IP_HEADER = "X-Test-Client-IP"
IN_PROCESS_URL = "https://api.binance.com"
#: an address from TEST-NET-3 the master is called from (the master key is unrestricted).
MASTER_IP = "203.0.113.1"
#: the emulator's least time between two key creates in one sub-account (Binance: about 1 s),
#: short so that tests making 30 keys stay quick; a client paces its creates to match.
CREATION_INTERVAL_S = 0.02


async def no_wait(seconds: float) -> None:
    """A sleep that yields once: retries back off without slowing the test down."""
    await asyncio.sleep(0)


@dataclass
class World:
    """One emulator and the clients of one test, reached in one mode ("inprocess"/"http"),
    its v2 IP-restriction call in one mode ("add"/"replace")."""

    mode: str
    ip_restriction_mode: str = "add"
    emulator_options: dict[str, Any] = field(default_factory=dict)
    emulator: Emulator | None = None
    base_url: str = IN_PROCESS_URL
    _server: Any = None
    _clients: list[BinanceClient] = field(default_factory=list)

    def start(self, **emulator_options: Any) -> Emulator:
        """(Re)create the emulator with these options; the default one needs no call."""
        self.stop_server()
        options = {
            "trusted_ip_header": IP_HEADER,
            "ip_restriction_mode": self.ip_restriction_mode,
            "key_creation_interval_s": CREATION_INTERVAL_S,
            **emulator_options,
        }
        self.emulator = Emulator(None, **options)
        if self.mode == "http":
            self._server, self.base_url = start_in_thread(self.emulator)
        return self.emulator

    @property
    def master_signer(self) -> HmacSigner:
        master = self.emulator.master
        return HmacSigner(master.api_key, SecretStr(master.secret))

    def client(
        self, signer: Signer | None = None, *, ip: str = MASTER_IP, **options: Any
    ) -> BinanceClient:
        """A client signing with `signer` (the master by default), calling from `ip`, pacing
        its key creates to the emulator's interval unless told otherwise."""
        options.setdefault("sleep", no_wait)
        options.setdefault("key_creation_interval_s", self.emulator.creation_pace.interval_s)
        transport = EmulatorTransport(self.emulator) if self.mode == "inprocess" else None
        client = BinanceClient(
            self.base_url,
            signer or self.master_signer,
            transport=transport,
            source_ip_header={IP_HEADER: ip},
            **options,
        )
        self._clients.append(client)
        return client

    def stop_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        self.stop_server()


@pytest.fixture(autouse=True)
def _no_master_from_env(monkeypatch):
    for name in ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(
    params=[
        ("inprocess", "add"),
        ("http", "add"),
        ("inprocess", "replace"),
        ("http", "replace"),
    ],
    ids=lambda p: "-".join(p),
)
async def world(request) -> World:
    w = World(*request.param)
    w.start()
    try:
        yield w
    finally:
        await w.close()


@pytest.fixture
def master(world: World) -> BinanceClient:
    return world.client()


@pytest.fixture
async def sub_email(master: BinanceClient) -> str:
    return await master.create_virtual_subaccount("contract")


Factory = Callable[..., BinanceClient]
