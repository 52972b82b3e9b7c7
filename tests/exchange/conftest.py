"""Fixtures for the exchange client tests: virtual time, a master signer, respx, clients.

Every base URL is loopback and every request is answered by respx: no traffic leaves.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from urllib.parse import parse_qsl

import pytest
import respx
from pydantic import SecretStr

from orchestrator.exchange.client import BinanceClient
from orchestrator.exchange.signing import HmacSigner

BASE = "http://127.0.0.1:9"
MASTER_KEY = "MasterKeyAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqr"
CANARY_SECRET = "CANARY-7f3c9e-do-not-leak-0123456789abcdefghijklmnopqrstuvwxyzAB"
#: a window-aligned instant (divisible by 60) plus 10 s, so tests know where boundaries are.
START = 1_700_000_040.0 + 10.0


class VirtualTime:
    """A fake clock and sleep. In auto mode a sleep advances the clock at once; otherwise
    sleepers wait until the test calls `advance`."""

    def __init__(self, start: float = START, auto: bool = True) -> None:
        self.now = start
        self.auto = auto
        self.sleeps: list[float] = []
        self._waiters: list[tuple[float, asyncio.Future]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.auto:
            self.now += max(seconds, 0.0)
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((self.now + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for wake, future in list(self._waiters):
            if wake <= self.now + 1e-9:
                self._waiters.remove((wake, future))
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        return len(self._waiters)

    async def settle(self, rounds: int = 100) -> None:
        """Let every task that can run without time passing run."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def drive(self, awaitable):
        """Run `awaitable`, jumping the clock to the next wake-up whenever all are asleep."""
        task = asyncio.ensure_future(awaitable)
        while not task.done():
            await self.settle()
            if not task.done() and self._waiters:
                self.advance(min(wake for wake, _ in self._waiters) - self.now)
        return task.result()


def hmac_ok(secret: str, signed: str) -> bool:
    """Whether `signed` (payload&signature=hex) carries a valid HMAC of its payload."""
    payload, _, signature = signed.rpartition("&signature=")
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def params_of(text: str) -> dict[str, str]:
    return dict(parse_qsl(text, keep_blank_values=True))


@pytest.fixture
def vtime() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def master() -> HmacSigner:
    return HmacSigner(MASTER_KEY, SecretStr(CANARY_SECRET))


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def make_client(vtime, master):
    clients: list[BinanceClient] = []

    def make(signer=None, **kw) -> BinanceClient:
        kw.setdefault("clock", vtime.clock)
        kw.setdefault("sleep", vtime.sleep)
        client = BinanceClient(BASE, signer or master, **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def helpers():
    """The module-level helpers, for test files (conftest cannot be imported reliably)."""

    class Helpers:
        VirtualTime = VirtualTime
        hmac_ok = staticmethod(hmac_ok)
        params_of = staticmethod(params_of)
        BASE = BASE
        MASTER_KEY = MASTER_KEY
        CANARY_SECRET = CANARY_SECRET
        START = START

    return Helpers
