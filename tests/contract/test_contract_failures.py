"""Contract: error mapping, rate limits and faults, end to end from the emulator's answer to
the client's typed error, in-process and over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr

from orchestrator.exchange import endpoints as ep
from orchestrator.exchange.client import TIMESTAMP_RESENDS
from orchestrator.exchange.errors import (
    AmbiguousOutcome,
    ApiError,
    BadRequest,
    InvalidSignature,
    TimestampOutOfWindow,
    Unauthorized,
    Unsupported,
)
from orchestrator.exchange.models import Permission
from orchestrator.exchange.signing import HmacSigner

FROZEN = 1_700_000_000.0  # a window boundary at any time scale that divides 60


# ---------------------------------------------------------------- error mapping


async def test_wrong_secret_is_invalid_signature(world):
    signer = HmacSigner(world.emulator.master.api_key, SecretStr("not-the-secret"))
    client = world.client(signer)
    with pytest.raises(InvalidSignature) as caught:
        await client.list_subaccounts()
    assert caught.value.code == -1022
    assert "BINANCE_API_SECRET" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


async def test_unknown_key_is_unauthorized(world):
    client = world.client(HmacSigner("UnknownKey0123456789", SecretStr("whatever")))
    with pytest.raises(Unauthorized) as caught:
        await client.list_subaccounts()
    assert caught.value.code == -2015
    assert "master key is invalid" in str(caught.value)


async def test_skewed_clock_is_resynced_and_the_call_succeeds(world, sub_email):
    skewed = world.client(clock=lambda: time.time() - 120)
    keys = await skewed.list_api_keys(sub_email)
    assert keys.total == 0
    assert 115_000 < skewed.time_offset_ms < 125_000
    counts = skewed.call_counts()
    assert counts == {"list_api_keys": 2, "server_time": 1}
    await skewed.list_api_keys(sub_email)  # the offset sticks: no second resync
    assert skewed.call_counts()["server_time"] == 1


async def test_skewed_write_is_resent_once_after_resync(world, sub_email):
    """-1021 means Binance did not look at the request, so even a create is resent."""
    skewed = world.client(clock=lambda: time.time() - 120)
    created = await skewed.create_api_key(sub_email, "orc-Skew-g1", frozenset(), [])
    keys = await world.client().list_all_api_keys(sub_email)
    assert [k.api_key for k in keys] == [created.api_key]


async def test_clock_that_cannot_be_resynced_raises_timestamp_out_of_window(world, sub_email):
    """A clock that falls another five minutes behind at every reading: the offset measured
    by the resync is stale before the request is signed."""
    readings = iter(range(10_000))

    def drifting() -> float:
        return time.time() - 300 * next(readings)

    client = world.client(clock=drifting)
    with pytest.raises(TimestampOutOfWindow) as caught:
        await client.list_api_keys(sub_email)
    assert caught.value.code == -1021
    assert "NTP" in str(caught.value)
    resends = TIMESTAMP_RESENDS
    assert client.call_counts() == {"list_api_keys": 1 + resends, "server_time": resends}


async def test_missing_parameter_is_bad_request(master):
    with pytest.raises(BadRequest) as caught:
        await master.list_api_keys("")
    assert caught.value.code == -1102 and "email" in str(caught.value)


async def test_thirty_first_key_is_refused_with_a_clear_message(master, sub_email):
    for i in range(30):
        await master.create_api_key(sub_email, f"orc-Cap{i}-g1", frozenset(), [])
    with pytest.raises(ApiError) as caught:
        await master.create_api_key(sub_email, "orc-Cap30-g1", frozenset(), [])
    assert "at most 30 API keys" in str(caught.value)
    assert len(await master.list_all_api_keys(sub_email)) == 30


@pytest.mark.parametrize("ip", ["2001:db8::1", "203.0.113.0/24"])
async def test_ipv6_or_cidr_whitelist_is_bad_request(master, sub_email, ip):
    created = await master.create_api_key(sub_email, "orc-Six-g1", frozenset(), [])
    with pytest.raises(BadRequest) as caught:
        await master.add_ip_restriction(sub_email, created.api_key, [ip])
    assert "IPv4" in str(caught.value)
    with pytest.raises(BadRequest):
        await master.create_api_key(sub_email, "orc-Six-g2", frozenset(), [ip])
    assert not (await master.get_ip_restriction(sub_email, created.api_key)).restricted


# ---------------------------------------------------------------- rate limits


async def test_paced_client_makes_130_key_listings_without_a_single_429(world):
    """60 list_api_keys fit in a window (180,000 / 3,000); 130 need three windows."""
    world.start(time_scale=60)
    client = world.client(rate_window_s=1.0, sleep=asyncio.sleep)
    email = await client.create_virtual_subaccount("paced")
    started = time.monotonic()
    pages = await asyncio.gather(*(client.list_api_keys(email) for _ in range(130)))
    elapsed = time.monotonic() - started
    assert len(pages) == 130
    assert client.rate_limited_counts() == {}
    assert client.call_counts()["list_api_keys"] == 130
    assert elapsed >= 1.0  # at least two window boundaries were waited for


async def test_paced_creates_never_trip_the_per_sub_account_creation_pace(world):
    """Five keys in each of two sub-accounts at once: creates in one sub-account go out one
    at a time, an interval apart; the two sub-accounts proceed side by side."""
    emulator = world.start(time_scale=10, key_creation_interval_s=None)  # 1 create per 0.1 s
    client = world.client(rate_window_s=6.0, sleep=asyncio.sleep, key_creation_interval_s=None)
    emails = [await client.create_virtual_subaccount(name) for name in ("left", "right")]
    await asyncio.gather(
        *(
            client.create_api_key(email, f"orc-Pace{i}-g1", frozenset(), [])
            for i in range(5)
            for email in emails
        )
    )
    assert client.rate_limited_counts() == {}
    assert emulator.stats.rate_limited == {}
    times = [sorted(k.create_time for k in emulator.accounts.subs[e].keys.values()) for e in emails]
    for created in times:
        assert len(created) == 5
        assert all(b - a >= 100 for a, b in zip(created, created[1:], strict=False))
    left, right = times
    assert left[0] < right[-1] and right[0] < left[-1]  # the two ran side by side


def _signed_get(base: httpx.Client, secret: str, api_key: str, path: str, params: dict):
    query = urlencode({**params, "timestamp": int(FROZEN * 1000)})
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return base.get(f"{path}?{query}&signature={signature}", headers={"X-MBX-APIKEY": api_key})


async def test_unpaced_burst_meets_429_with_retry_after_while_other_endpoints_still_work(world):
    """61 raw signed calls in one (frozen) window: the 61st is refused; get_ip_restriction has
    its own budget and still answers, through the paced client too."""
    emulator = world.start(time_scale=60, clock=lambda: FROZEN)
    client = world.client(rate_window_s=1.0, clock=lambda: FROZEN)
    email = await client.create_virtual_subaccount("burst")
    created = await client.create_api_key(email, "orc-Burst-g1", frozenset(), [])
    master = emulator.master
    if world.mode == "inprocess":
        from orchestrator.emulator.transport import EmulatorTransport

        raw = httpx.Client(base_url=world.base_url, transport=EmulatorTransport(emulator))
    else:
        raw = httpx.Client(base_url=world.base_url)
    with raw:
        answers = [
            _signed_get(raw, master.secret, master.api_key, ep.LIST_API_KEYS.path, {"email": email})
            for _ in range(61)
        ]
        other = _signed_get(
            raw,
            master.secret,
            master.api_key,
            ep.GET_IP_RESTRICTION.path,
            {"email": email, "subAccountApiKey": created.api_key},
        )
    statuses = [a.status_code for a in answers]
    assert statuses[:60] == [200] * 60 and statuses[60] == 429
    refused = answers[60]
    assert refused.json()["code"] == -1003
    assert 0 < float(refused.headers["Retry-After"]) <= 1.0
    assert answers[59].headers["X-SAPI-USED-UID-WEIGHT-1M"] == "180000"
    assert other.status_code == 200
    assert other.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "3000"
    restriction = await client.get_ip_restriction(email, created.api_key)
    assert restriction.api_key == created.api_key
    assert client.rate_limited_counts() == {}


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize("fault", ["error_after", "drop_after"])
async def test_write_failing_after_commit_is_ambiguous_and_really_happened(
    world, master, sub_email, fault
):
    world.emulator.inject(fault, "create_api_key")
    with pytest.raises(AmbiguousOutcome) as caught:
        await master.create_api_key(sub_email, "orc-Amb-g1", frozenset(), [])
    assert "reconciled" in str(caught.value)
    assert master.call_counts()["create_api_key"] == 1  # never retried blindly
    names = [k.api_name for k in await master.list_all_api_keys(sub_email)]
    assert names == ["orc-Amb-g1"]


async def test_permission_change_failing_after_commit_is_ambiguous_and_applied(
    world, master, sub_email
):
    created = await master.create_api_key(sub_email, "orc-AmbP-g1", frozenset(), [])
    world.emulator.inject("error_after", "set_permissions")
    with pytest.raises(AmbiguousOutcome):
        await master.set_permissions(sub_email, created.api_key, frozenset({Permission.SPOT}))
    (row,) = (await master.list_api_keys(sub_email)).rows
    assert row.permissions == frozenset({Permission.SPOT})


@pytest.mark.parametrize("fault", ["error_before", "drop_before"])
async def test_read_failing_before_is_retried_transparently(world, master, sub_email, fault):
    world.emulator.inject(fault, "list_api_keys", count=2)
    page = await master.list_api_keys(sub_email)
    assert page.total == 0
    assert master.call_counts()["list_api_keys"] == 3


async def test_write_failing_before_is_ambiguous_and_did_not_happen(world, master, sub_email):
    """The client cannot tell error_before from error_after: both are ambiguous; reading live
    state is what tells them apart."""
    world.emulator.inject("error_before", "create_api_key")
    with pytest.raises(AmbiguousOutcome):
        await master.create_api_key(sub_email, "orc-Nope-g1", frozenset(), [])
    assert await master.list_all_api_keys(sub_email) == []


async def test_an_email_that_is_not_a_sub_account_is_unsupported(master):
    with pytest.raises(Unsupported) as caught:
        await master.create_api_key("nobody@example.com", "orc-Nobody-g1", frozenset(), [])
    assert caught.value.code == -9000
    assert "not in parent-child relation" in str(caught.value)
    assert "belongs to a sub-account of this master" in str(caught.value)
