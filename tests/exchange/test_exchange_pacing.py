"""Weight pacing: budgets per endpoint, fixed windows on server time, headers and 429s."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from orchestrator.exchange.endpoints import GET_IP_RESTRICTION, LIST_API_KEYS
from orchestrator.exchange.pacing import WeightPacer

EMAIL = "quant@example.com"
KEYS = "/sapi/v1/sub-account/subAccountApi"
IPS = "/sapi/v1/sub-account/subAccountApi/ipRestriction"
EMPTY_PAGE = {"total": 0, "rows": []}


@pytest.fixture
def paused(helpers):
    """Virtual time that only moves when the test says so."""
    return helpers.VirtualTime(auto=False)


def _record_time(vt, json_body, headers=None):
    """A respx side effect answering `json_body` and noting the (virtual) send time."""
    sent: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(vt.now)
        return httpx.Response(200, json=json_body, headers=headers or {})

    return answer, sent


# -- the pacer alone ------------------------------------------------------------------------


async def test_pacer_fills_the_budget_then_waits_for_the_boundary(paused):
    pacer = WeightPacer(window_s=60.0, clock=paused.clock, sleep=paused.sleep, guard_s=0)
    for _ in range(60):
        await pacer.acquire("k", 3000, 180_000)
    assert pacer.used("k") == 180_000
    late = asyncio.ensure_future(pacer.acquire("k", 3000, 180_000))
    await paused.settle()
    assert not late.done() and paused.sleeps == [pytest.approx(50.0)]
    paused.advance(49.9)
    await paused.settle()
    assert not late.done()
    paused.advance(0.1)
    await paused.settle()
    reservation = late.result()
    assert reservation.window == pacer.window_of(paused.now)
    assert pacer.used("k") == 3000


async def test_pacer_keys_are_independent(paused):
    pacer = WeightPacer(clock=paused.clock, sleep=paused.sleep, guard_s=0)
    for _ in range(60):
        await pacer.acquire("a", 3000, 180_000)
    await asyncio.wait_for(pacer.acquire("b", 3000, 180_000), timeout=1)
    assert paused.sleeps == []


async def test_pacer_takes_the_larger_of_local_and_header_count(paused):
    pacer = WeightPacer(clock=paused.clock, sleep=paused.sleep, guard_s=0)
    first = await pacer.acquire("k", 3000, 180_000)
    pacer.observe(first, 150_000)
    assert pacer.used("k") == 150_000
    pacer.observe(first, 1_000)
    assert pacer.used("k") == 150_000


async def test_pacer_ignores_headers_of_an_earlier_window(paused):
    pacer = WeightPacer(clock=paused.clock, sleep=paused.sleep, guard_s=0)
    old = await pacer.acquire("k", 3000, 180_000)
    paused.advance(60)
    await pacer.acquire("k", 3000, 180_000)
    pacer.observe(old, 177_000)
    assert pacer.used("k") == 3000


async def test_pacer_blocks_a_key_until_retry_after(paused):
    pacer = WeightPacer(clock=paused.clock, sleep=paused.sleep, guard_s=0)
    assert pacer.block("k", 0.4) == 0.4
    blocked = asyncio.ensure_future(pacer.acquire("k", 1, 12_000))
    other = asyncio.ensure_future(pacer.acquire("other", 1, 12_000))
    await paused.settle()
    assert other.done() and not blocked.done()
    paused.advance(0.4)
    await paused.settle()
    assert blocked.done()


async def test_pacer_uses_the_configured_window(paused):
    pacer = WeightPacer(window_s=1.0, clock=paused.clock, sleep=paused.sleep, guard_s=0)
    paused.advance(0.25)
    for _ in range(60):
        await pacer.acquire("k", 3000, 180_000)
    late = asyncio.ensure_future(pacer.acquire("k", 3000, 180_000))
    await paused.settle()
    assert paused.sleeps == [pytest.approx(0.75)]
    paused.advance(0.75)
    await paused.settle()
    assert late.done()


async def test_a_call_heavier_than_the_budget_still_goes_alone(paused):
    pacer = WeightPacer(clock=paused.clock, sleep=paused.sleep, guard_s=0)
    await asyncio.wait_for(pacer.acquire("k", 20_000, 12_000), timeout=1)


async def test_guard_band_around_the_boundary(paused):
    pacer = WeightPacer(window_s=60.0, clock=paused.clock, sleep=paused.sleep, guard_s=0.25)
    paused.advance(49.9)  # 0.1 s before the boundary: inside the guard band
    for _ in range(10):
        await pacer.acquire("k", 3000, 180_000)
    paused.advance(0.1)
    assert pacer.used("k") == 30_000, "calls sent just before the boundary may land after it"
    paused.advance(30.0)
    await pacer.acquire("k", 3000, 180_000)
    paused.advance(30.0)
    assert pacer.used("k") == 0, "only the calls near the boundary are carried over"


def test_window_must_be_positive():
    with pytest.raises(ValueError):
        WeightPacer(window_s=0)


# -- the pacer inside the client --------------------------------------------------------------


async def test_61st_call_waits_for_the_next_window_other_endpoint_does_not(
    mock, make_client, paused
):
    keys_answer, keys_sent = _record_time(paused, EMPTY_PAGE)
    ips_answer, ips_sent = _record_time(paused, {"ipRestrict": "false"})
    mock.get(KEYS).mock(side_effect=keys_answer)
    mock.get(IPS).mock(side_effect=ips_answer)
    client = make_client(clock=paused.clock, sleep=paused.sleep)
    start = paused.now
    burst = [asyncio.ensure_future(client.list_api_keys(EMAIL)) for _ in range(61)]
    other = asyncio.ensure_future(client.get_ip_restriction(EMAIL, "k"))
    await paused.settle()
    assert len(keys_sent) == 60, "the window's budget goes out at once"
    assert other.done() and ips_sent == [start], "another endpoint is not delayed"
    guard = client.pacer.guard_s
    assert guard == 0.25
    assert paused.sleepers == 1 and paused.sleeps == [pytest.approx(50.0 + guard)]
    paused.advance(50.0)
    await paused.settle()
    assert len(keys_sent) == 60, "not before the guard band past the boundary"
    paused.advance(guard)
    await asyncio.gather(*burst)
    assert keys_sent[60] == pytest.approx(start + 50.0 + guard)
    assert client.rate_limited_counts() == {}
    assert client.call_counts() == {"list_api_keys": 61, "get_ip_restriction": 1}


async def test_burst_uses_exactly_as_many_windows_as_the_budget_needs(mock, make_client, paused):
    answer, sent = _record_time(paused, EMPTY_PAGE)
    mock.get(KEYS).mock(side_effect=answer)
    client = make_client(clock=paused.clock, sleep=paused.sleep)
    start = paused.now

    async def burst():
        return await asyncio.gather(*(client.list_api_keys(EMAIL) for _ in range(150)))

    await paused.drive(burst())
    assert len(sent) == 150
    guard = client.pacer.guard_s
    assert paused.now == pytest.approx(start + 50.0 + 60.0 + guard)  # windows of 60, 60, 30
    windows = [int(t // 60) for t in sent]
    assert [windows.count(w) for w in sorted(set(windows))] == [60, 60, 30]


async def test_used_weight_header_slows_the_client_down(mock, make_client, paused):
    answer, sent = _record_time(paused, EMPTY_PAGE, headers={"X-SAPI-USED-UID-WEIGHT-1M": "177000"})
    mock.get(KEYS).mock(side_effect=answer)
    client = make_client(clock=paused.clock, sleep=paused.sleep)
    await client.list_api_keys(EMAIL)  # the server says 177,000 of 180,000 are used
    second = asyncio.ensure_future(client.list_api_keys(EMAIL))
    third = asyncio.ensure_future(client.list_api_keys(EMAIL))
    await paused.settle()
    assert second.done() and not third.done() and len(sent) == 2
    assert paused.sleeps == [pytest.approx(50.0 + client.pacer.guard_s)]
    paused.advance(50.0 + client.pacer.guard_s)
    await third
    assert len(sent) == 3


async def test_windows_follow_server_time(mock, make_client, paused, helpers):
    mock.get("/api/v3/time").respond(json={"serverTime": int(helpers.START * 1000) + 5_000})
    answer, _ = _record_time(paused, EMPTY_PAGE)
    mock.get(KEYS).mock(side_effect=answer)
    client = make_client(clock=paused.clock, sleep=paused.sleep)
    await client.sync_time()
    for _ in range(60):
        await client.list_api_keys(EMAIL)
    late = asyncio.ensure_future(client.list_api_keys(EMAIL))
    await paused.settle()
    guard = client.pacer.guard_s
    assert paused.sleeps == [pytest.approx(45.0 + guard)], "server is 15 s into its window"
    paused.advance(45.0 + guard)
    await late


async def test_emulator_time_scale_window(mock, make_client, paused):
    answer, sent = _record_time(paused, {"ipRestrict": "false"})
    mock.get(IPS).mock(side_effect=answer)
    client = make_client(clock=paused.clock, sleep=paused.sleep, rate_window_s=1.0)

    async def burst():
        await asyncio.gather(*(client.get_ip_restriction(EMAIL, "k") for _ in range(61)))

    start = paused.now
    await paused.drive(burst())
    assert client.pacer.guard_s == pytest.approx(0.01)
    assert sent[-1] == pytest.approx(start + 1.01)  # START is on a whole second
    assert GET_IP_RESTRICTION.calls_per_minute == 60 and LIST_API_KEYS.weight == 3000


async def test_429_blocks_only_its_own_endpoint(mock, make_client, paused):
    mock.get(KEYS).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(200, json=EMPTY_PAGE),
        ]
    )
    mock.get(IPS).respond(json={"ipRestrict": "false"})
    client = make_client(clock=paused.clock, sleep=paused.sleep)
    listing = asyncio.ensure_future(client.list_api_keys(EMAIL))
    await paused.settle()
    assert not listing.done() and paused.sleeps == [pytest.approx(3.0)]
    await asyncio.wait_for(client.get_ip_restriction(EMAIL, "k"), timeout=1)
    paused.advance(3.0)
    await listing
    assert client.rate_limited_counts() == {"list_api_keys": 1}


# -- key creates, one sub-account at a time -------------------------------------------------


async def test_creates_in_one_sub_account_go_out_an_interval_apart(mock, make_client, paused):
    """Each create waits the interval after the previous answer in its sub-account; creates
    in other sub-accounts go out at once."""
    sent: list[tuple[str, float]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        email = dict(httpx.QueryParams(request.content.decode()))["email"]
        sent.append((email, paused.now))
        return httpx.Response(200, json={"apiName": "n", "apiKey": "K" * 64, "status": 1})

    mock.post(KEYS).mock(side_effect=answer)
    client = make_client(clock=paused.clock, sleep=paused.sleep)
    other = "other@example.com"
    creates = (
        client.create_api_key(email, "n", frozenset(), []) for email in (EMAIL, EMAIL, other)
    )
    await paused.drive(asyncio.gather(*creates))
    times = {email: [t for e, t in sent if e == email] for email in (EMAIL, other)}
    start = times[EMAIL][0]
    assert times[other] == [start]
    assert times[EMAIL][1] - start == pytest.approx(1.02)


async def test_the_creation_interval_follows_the_rate_window(make_client):
    client = make_client(rate_window_s=6.0)
    assert client._creates.interval_s == pytest.approx(0.1)


async def test_try_acquire_reserves_only_what_fits_now(paused):
    pacer = WeightPacer(window_s=60.0, clock=paused.clock, sleep=paused.sleep, guard_s=0)
    taken = [pacer.try_acquire("k", 3000, 180_000) for _ in range(61)]
    assert all(taken[:60]) and taken[60] is None
    assert pacer.used("k") == 180_000 and paused.sleeps == []


async def test_waiting_for_room_reserves_nothing(paused):
    pacer = WeightPacer(window_s=60.0, clock=paused.clock, sleep=paused.sleep, guard_s=0)
    await pacer.wait_for_room("k", 3000, 180_000)  # an empty window has room: no wait
    assert pacer.used("k") == 0 and paused.sleeps == []
    for _ in range(60):
        pacer.try_acquire("k", 3000, 180_000)
    waiting = asyncio.ensure_future(pacer.wait_for_room("k", 3000, 180_000))
    await paused.settle()
    assert not waiting.done()
    paused.advance(paused.sleeps[-1])
    await paused.settle()
    assert waiting.done() and pacer.used("k") == 0  # a new window, and still nothing reserved
