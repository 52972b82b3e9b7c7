from __future__ import annotations

import pytest
from emulator_kit import VIRTUAL, FakeClock, HmacSigner, SignedClient

from orchestrator.emulator.core import Emulator


@pytest.fixture(autouse=True)
def _no_master_from_env(monkeypatch):
    for name in ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock) -> Emulator:
    return Emulator(None, clock=clock)


@pytest.fixture
def master(emulator) -> SignedClient:
    return SignedClient(emulator, HmacSigner(emulator.master.api_key, emulator.master.secret))


@pytest.fixture
def sub_email(master) -> str:
    return master.ok("POST", VIRTUAL, {"subAccountString": "quant"})["email"]
