"""Fault injection: queued faults, seeded random faults, after-commit faults that commit."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from emulator_kit import BASE, LIST_SUBS, SUBACCOUNT_API, VIRTUAL, HmacSigner, SignedClient

from orchestrator.emulator.core import Emulator
from orchestrator.emulator.transport import EmulatorTransport


def key_count(master, email) -> int:
    return master.ok("GET", SUBACCOUNT_API, {"email": email})["total"]


def create(master, email, name="k"):
    return master.call("POST", SUBACCOUNT_API, {"email": email, "apiName": name, "status": 1})


def test_error_after_commit_really_commits(emulator, master, sub_email):
    emulator.inject("error_after", "create_api_key")
    response = create(master, sub_email)
    assert response.status_code in (500, 503)
    assert response.json()["code"] in (-1000, -1007)
    assert key_count(master, sub_email) == 1


def test_error_before_commit_changes_nothing(emulator, master, sub_email):
    emulator.inject("error_before", "create_api_key")
    assert create(master, sub_email).status_code >= 500
    assert key_count(master, sub_email) == 0


def test_drop_after_commit_raises_and_commits(emulator, master, sub_email):
    emulator.inject("drop_after", "create_api_key")
    with pytest.raises(httpx.RemoteProtocolError):
        create(master, sub_email)
    assert key_count(master, sub_email) == 1


def test_drop_before_commit_raises_and_changes_nothing(emulator, master, sub_email):
    emulator.inject("drop_before", "create_api_key")
    with pytest.raises(httpx.RemoteProtocolError):
        create(master, sub_email)
    assert key_count(master, sub_email) == 0


def test_injected_faults_match_their_endpoint_and_count(emulator, master, sub_email):
    emulator.inject("error_before", "create_api_key", count=2)
    assert master.call("GET", LIST_SUBS).status_code == 200
    assert create(master, sub_email).status_code >= 500
    assert create(master, sub_email).status_code >= 500
    assert create(master, sub_email).status_code == 200


def test_injected_rate_limit(emulator, master):
    emulator.inject("rate_limit", "list_subaccounts")
    refused = master.call("GET", LIST_SUBS)
    assert refused.status_code == 429 and float(refused.headers["Retry-After"]) > 0


def test_unknown_fault_kind_is_refused(emulator):
    with pytest.raises(ValueError):
        emulator.inject("meteor")


def test_latency_and_spikes_delay_the_answer(clock):
    emulator = Emulator(None, clock=clock, latency_ms=20, latency_spike_s=0.2)
    answer = emulator.handle(_time_request())
    assert answer.delay_s == pytest.approx(0.02)
    emulator.inject("latency")
    assert 0.12 <= emulator.handle(_time_request()).delay_s <= 0.32


def _time_request():
    from orchestrator.emulator.core import EmuRequest

    return EmuRequest("GET", "/api/v3/time")


def _outcomes(seed: int) -> list:
    emulator = Emulator(None, fault_rate=0.3, seed=seed, latency_spike_s=0.001)
    master = SignedClient(emulator, HmacSigner(emulator.master.api_key, emulator.master.secret))
    outcomes = []
    for i in range(40):
        try:
            response = master.call("POST", VIRTUAL, {"subAccountString": f"s{i}"})
            outcomes.append((response.status_code, response.json().get("code")))
        except httpx.RemoteProtocolError:
            outcomes.append("drop")
    outcomes.append(len(emulator.accounts.subs))
    return outcomes


def test_random_faults_are_reproducible_from_the_seed():
    first, again, other = _outcomes(7), _outcomes(7), _outcomes(8)
    assert first == again
    assert first != other
    assert any(o != (200, None) for o in first[:-1])


async def test_async_transport_sleeps_and_drops(clock):
    emulator = Emulator(None, clock=clock, latency_ms=30)
    transport = EmulatorTransport(emulator)
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await client.get("/api/v3/time")
        assert response.status_code == 200 and loop.time() - started >= 0.025
        emulator.inject("drop_before")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/api/v3/time")


def test_injecting_for_an_unknown_endpoint_is_refused(emulator):
    with pytest.raises(ValueError):
        emulator.inject("error_before", "create_api_keys")
