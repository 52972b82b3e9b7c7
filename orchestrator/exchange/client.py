"""The Binance client: the `Exchange` interface over httpx.

One request path for every endpoint: pace (weight budget) -> build and sign -> send -> map the
answer to a value or to a typed error. Retries (tenacity) are decided per endpoint: reads retry
on 5xx and network errors; writes never retry once the request may have reached Binance
(that is an `AmbiguousOutcome` to reconcile); every call retries after a 429 once the pacer
says the budget is free again, and after a -1021 once the clock offset is resynced.

A request is signed at the last moment: after its weight is reserved, after any clock resync in
progress has finished and once a connection slot is free. A -1021 (timestamp outside recvWindow)
means Binance refused the request before acting on it, so the request is re-signed with a fresh
timestamp and resent, after a resync that concurrent refusals share.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, stop_never, wait_random_exponential

from orchestrator.exchange import endpoints as ep
from orchestrator.exchange import parsing
from orchestrator.exchange.endpoints import USED_WEIGHT_HEADER, Endpoint
from orchestrator.exchange.errors import (
    ERROR_KINDS,
    AmbiguousOutcome,
    ConnectFailed,
    ExchangeError,
    IpBanned,
    MalformedResponse,
    MalformedWriteResponse,
    NetworkError,
    RateLimited,
    ServerError,
    TimestampOutOfWindow,
    error_kind,
)
from orchestrator.exchange.interface import Signer
from orchestrator.exchange.logging import mask_key, scrub_text
from orchestrator.exchange.models import (
    ApiKey,
    ApiKeyPage,
    ApiRestrictions,
    CreatedKey,
    IpRestriction,
    Permissions,
    SubAccount,
    flags_from_permissions,
)
from orchestrator.exchange.pacing import CreationGate, Reservation, WeightPacer
from orchestrator.exchange.transport import PooledTransport

log = structlog.get_logger("orchestrator.exchange")

API_KEY_HEADER = "X-MBX-APIKEY"
SUBACCOUNT_PAGE_LIMIT = 200
API_KEY_PAGE_SIZE = 100
_MAX_PAGES = 10_000
_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

HINT_AMBIGUOUS = (
    "the change may or may not have happened; it must be reconciled by reading live state "
    "(for a key: list the sub-account's keys and look for its apiName), never blindly retried"
)


#: requests on the wire at once; a request waits for a slot *before* it is signed, so a queue
#: in the connection pool can never make its timestamp stale. A window's budget (60 calls of
#: weight 3000) goes out in a few round trips; more connections cost more than they give, as
#: the pool's bookkeeping on every request grows with the square of their number.
MAX_IN_FLIGHT = 20

#: resends of one request refused with -1021, each after a resync; from the second one on, the
#: request also asks for a wider recvWindow (doubling, up to Binance's 60 s), in case what
#: stales it is a slow path to Binance rather than the clock.
TIMESTAMP_RESENDS = 5
MAX_RECV_WINDOW_MS = 60_000


@dataclass
class _RetryPolicy:
    """Which failures of one logical call are retried, and how many times each."""

    endpoint: Endpoint
    read_retries: int
    rate_limit_retries: int
    backoff: Callable[[RetryCallState], float]
    used: Counter = field(default_factory=Counter)

    def reason(self, exc: BaseException | None) -> str | None:
        if isinstance(exc, IpBanned):
            return None
        if isinstance(exc, RateLimited):
            return "rate_limited"
        if isinstance(exc, ConnectFailed):
            return "not_sent"
        if not self.endpoint.mutating and isinstance(exc, ServerError | NetworkError):
            return "transient"
        return None

    def should_retry(self, state: RetryCallState) -> bool:
        reason = self.reason(state.outcome.exception() if state.outcome else None)
        if reason is None:
            return False
        self.used[reason] += 1
        limit = self.rate_limit_retries if reason == "rate_limited" else self.read_retries
        return self.used[reason] <= limit

    def wait(self, state: RetryCallState) -> float:
        """No backoff after a 429: the pacer already holds the call until Retry-After."""
        if state.outcome and isinstance(state.outcome.exception(), RateLimited):
            return 0.0
        return self.backoff(state)


@dataclass
class _Signed:
    """Which clock sync a request was signed with (the count of resyncs done by then)."""

    generation: int = -1


class BinanceClient:
    """The master account's client for Binance's sub-account API-key endpoints.

    `transport` lets the same client run against the real service (default), the in-process
    emulator, or respx. `clock`/`sleep` are injectable for tests; `rate_window_s` is the
    rate-limit window (60 s on Binance, shorter on an emulator with --time-scale).
    `source_ip_header` is added to every request (the in-process emulator reads the caller's
    IP from it). `key_creation_interval_s` is the least time between two key creates in one
    sub-account (Binance: about 1 s; by default the rate window's sixtieth, so it scales with
    an emulator's --time-scale).
    """

    def __init__(
        self,
        base_url: str,
        signer: Signer,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        recv_window_ms: int = 5000,
        rate_window_s: float = 60.0,
        timeout_s: float = 10.0,
        read_retries: int = 4,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
        source_ip_header: Mapping[str, str] | None = None,
        rate_limit_retries: int = 5,
        key_creation_interval_s: float | None = None,
    ) -> None:
        if not 0 < recv_window_ms <= 60_000:
            raise ValueError("recv_window_ms must be in 1..60000 (Binance's maximum)")
        self._signer = signer
        self._recv_window_ms = recv_window_ms
        self._clock = clock
        self._sleep = sleep
        self._read_retries = read_retries
        self._rate_limit_retries = rate_limit_retries
        self._offset_ms = 0
        self._sync_generation = 0  # how many resyncs have completed
        self._sync_lock = asyncio.Lock()
        self._on_the_wire = 0
        self._wire_idle = asyncio.Event()
        self._wire_idle.set()
        self._backoff = wait_random_exponential(multiplier=0.2, max=8.0)
        self._pacer = WeightPacer(window_s=rate_window_s, clock=self._server_clock_s, sleep=sleep)
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        if key_creation_interval_s is None:
            key_creation_interval_s = rate_window_s / 60
        self._creates = CreationGate(key_creation_interval_s, clock=clock, sleep=sleep)
        limits = httpx.Limits(
            max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT
        )
        if transport is None:  # plain http (an emulator) has no TLS: no CA bundle to load
            transport = PooledTransport(limits=limits, verify=httpx.URL(base_url).scheme == "https")
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=timeout_s,
            limits=limits,
            headers=dict(source_ip_header or {}),
        )
        self._calls: Counter[str] = Counter()
        self._rate_limited: Counter[str] = Counter()

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> BinanceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections, once every request already sent has its answer: closing under
        a request on the wire would turn a write into an ambiguous outcome."""
        await self._wire_idle.wait()
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"BinanceClient({str(self._http.base_url)!r}, signer={self._signer!r})"

    # -- counters and time -----------------------------------------------------------------

    def call_counts(self) -> dict[str, int]:
        """HTTP requests sent so far (retries included), by endpoint name."""
        return dict(self._calls)

    def rate_limited_counts(self) -> dict[str, int]:
        """429/-1003 answers received so far, by endpoint name."""
        return dict(self._rate_limited)

    @property
    def master_api_key(self) -> str:
        """The master key's id (public, but shown masked)."""
        return self._signer.api_key

    @property
    def pacer(self) -> WeightPacer:
        return self._pacer

    @property
    def time_offset_ms(self) -> int:
        """Server time minus local time, as measured by the last `sync_time`."""
        return self._offset_ms

    async def sync_time(self) -> int:
        """Measure the offset to Binance's clock (applied to timestamps and rate windows).

        The server read its clock somewhere within our round trip; we take the end of it, so
        any error makes our timestamps late, never early: Binance refuses a timestamp 1 s
        ahead of its clock but accepts one up to recvWindow (5 s) behind, and a round trip
        can be long when the event loop is busy (taking the midpoint then made timestamps
        run ahead and fail with -1021)."""
        server_ms = await self.server_time()
        after = self._clock()
        self._offset_ms = round(server_ms - after * 1000)
        self._sync_generation += 1
        log.info("exchange.time_synced", offset_ms=self._offset_ms)
        return self._offset_ms

    async def _resync_after_refusal(self, signed_in_generation: int) -> None:
        """Resync once for every request refused with -1021 that was signed with the same
        offset: the first one refused resyncs, the others wait for it and reuse its result."""
        async with self._sync_lock:
            if self._sync_generation == signed_in_generation:
                await self.sync_time()

    async def _resync_finished(self) -> None:
        """Wait for a resync in progress, so a request about to be signed uses its offset."""
        if self._sync_lock.locked():
            async with self._sync_lock:
                pass

    def _server_clock_s(self) -> float:
        return self._clock() + self._offset_ms / 1000

    def _timestamp_ms(self) -> int:
        return int(self._clock() * 1000) + self._offset_ms

    # -- the Exchange interface ------------------------------------------------------------

    async def server_time(self) -> int:
        return await self._call(ep.SERVER_TIME, {}, parsing.server_time)

    async def create_virtual_subaccount(self, sub_account_string: str) -> str:
        params = {"subAccountString": sub_account_string}
        return await self._call(
            ep.CREATE_VIRTUAL_SUBACCOUNT, params, parsing.virtual_subaccount_email
        )

    async def list_subaccounts(
        self, *, email: str | None = None, page: int = 1, limit: int = SUBACCOUNT_PAGE_LIMIT
    ) -> list[SubAccount]:
        params = {"email": email, "page": page, "limit": limit}
        return await self._call(ep.LIST_SUBACCOUNTS, params, parsing.subaccounts)

    async def list_all_subaccounts(self) -> list[SubAccount]:
        found: list[SubAccount] = []
        for page in range(1, _MAX_PAGES):
            rows = await self.list_subaccounts(page=page, limit=SUBACCOUNT_PAGE_LIMIT)
            found.extend(rows)
            if len(rows) < SUBACCOUNT_PAGE_LIMIT:
                break
        return found

    async def list_api_keys(
        self,
        email: str,
        *,
        api_key: str | None = None,
        page: int = 1,
        size: int = API_KEY_PAGE_SIZE,
    ) -> ApiKeyPage:
        params = {"email": email, "subAccountApiKey": api_key, "page": page, "size": size}
        return await self._call(
            ep.LIST_API_KEYS, params, lambda body: parsing.api_key_page(body, email)
        )

    async def list_all_api_keys(self, email: str) -> list[ApiKey]:
        """Every key of the sub-account. Stops on a short page, or once `total` rows are in
        (each page costs 3000 weight, so the extra empty page is worth avoiding)."""
        found: list[ApiKey] = []
        for page in range(1, _MAX_PAGES):
            result = await self.list_api_keys(email, page=page, size=API_KEY_PAGE_SIZE)
            found.extend(result.rows)
            if len(result.rows) < API_KEY_PAGE_SIZE or 0 < result.total <= len(found):
                break
        return found

    async def create_api_key(
        self,
        email: str,
        api_name: str,
        permissions: Permissions,
        ips: Sequence[str],
        *,
        public_key_pem: str | None = None,
    ) -> CreatedKey:
        params: dict[str, Any] = {
            "email": email,
            "apiName": api_name,
            "status": parsing.STATUS_TRUSTED_IPS if ips else parsing.STATUS_UNRESTRICTED,
            **flags_from_permissions(permissions),
            "ipAddress": list(ips) or None,
            "publicKey": public_key_pem,
        }
        return await self._call(
            ep.CREATE_API_KEY,
            params,
            lambda body: parsing.created_key(body, email, permissions, ips),
        )

    async def create_api_key_v2(
        self,
        email: str,
        api_name: str,
        permissions: Permissions,
        ips: Sequence[str],
        *,
        public_key_pem: str | None = None,
        fix_api_trading: bool = False,
        fix_api_reading: bool = False,
    ) -> CreatedKey:
        """The v2 create: as v1, plus FIX API access (Ed25519 keys only); `publicKey` (RSA or
        Ed25519) goes in the form body, as v2 requires. The engine creates with v1: plans
        have no FIX permissions, and v1 is the create Binance's own SDKs call."""
        params: dict[str, Any] = {
            "email": email,
            "apiName": api_name,
            "status": parsing.STATUS_TRUSTED_IPS if ips else parsing.STATUS_UNRESTRICTED,
            **flags_from_permissions(permissions),
            "canFixApiTrading": True if fix_api_trading else None,
            "canFixApiReading": True if fix_api_reading else None,
            "ipAddress": list(ips) or None,
            "publicKey": public_key_pem,
        }
        return await self._call(
            ep.CREATE_API_KEY_V2,
            params,
            lambda body: parsing.created_key(body, email, permissions, ips),
        )

    async def delete_api_key(self, email: str, api_key: str) -> None:
        params = {"email": email, "subAccountApiKey": api_key}
        await self._call(ep.DELETE_API_KEY, params, parsing.expect_object)

    async def set_permissions(self, email: str, api_key: str, permissions: Permissions) -> None:
        params = {
            "email": email,
            "subAccountApiKey": api_key,
            **flags_from_permissions(permissions),
        }
        await self._call(ep.SET_PERMISSIONS, params, parsing.expect_object)

    async def add_ip_restriction(
        self, email: str, api_key: str, ips: Sequence[str]
    ) -> IpRestriction:
        if not ips:
            raise ValueError("add_ip_restriction needs at least one IP (see remove_ip_restriction)")
        params = {
            "email": email,
            "subAccountApiKey": api_key,
            "status": parsing.STATUS_TRUSTED_IPS,
            "ipAddress": list(ips),
        }
        return await self._ip_call(ep.ADD_IP_RESTRICTION, params, api_key)

    async def remove_ip_restriction(self, email: str, api_key: str) -> IpRestriction:
        params = {
            "email": email,
            "subAccountApiKey": api_key,
            "status": parsing.STATUS_UNRESTRICTED,
        }
        return await self._ip_call(ep.ADD_IP_RESTRICTION, params, api_key)

    async def get_ip_restriction(self, email: str, api_key: str) -> IpRestriction:
        params = {"email": email, "subAccountApiKey": api_key}
        return await self._ip_call(ep.GET_IP_RESTRICTION, params, api_key)

    async def delete_ips(self, email: str, api_key: str, ips: Sequence[str]) -> IpRestriction:
        if not ips:
            raise ValueError("delete_ips needs at least one IP")
        params = {"email": email, "subAccountApiKey": api_key, "ipAddress": list(ips)}
        return await self._ip_call(ep.DELETE_IPS, params, api_key)

    async def api_restrictions(self, signer: Signer) -> ApiRestrictions:
        return await self._call(ep.API_RESTRICTIONS, {}, parsing.api_restrictions, signer=signer)

    async def master_restrictions(self) -> ApiRestrictions:
        """What the master key itself may do, and whether it has an IP whitelist."""
        return await self.api_restrictions(self._signer)

    async def _ip_call(self, endpoint: Endpoint, params: dict, api_key: str) -> IpRestriction:
        return await self._call(
            endpoint, params, lambda body: parsing.ip_restriction(body, api_key)
        )

    # -- one logical call ------------------------------------------------------------------

    async def _call(
        self,
        endpoint: Endpoint,
        params: Mapping[str, Any],
        parse: Callable[[Any], Any],
        *,
        signer: Signer | None = None,
    ) -> Any:
        """Send with retries, then parse the JSON body with `parse`."""
        policy = _RetryPolicy(endpoint, self._read_retries, self._rate_limit_retries, self._backoff)
        retrying = AsyncRetrying(
            retry=policy.should_retry,
            stop=stop_never,
            wait=policy.wait,
            sleep=self._backoff_sleep,
            reraise=True,
        )
        signer = signer or self._signer
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                body = await self._send_with_resync(endpoint, params, signer, number)
        return self._parse(endpoint, parse, body)

    async def _backoff_sleep(self, seconds: float) -> None:
        if seconds > 0:
            await self._sleep(seconds)

    async def _send_with_resync(
        self, endpoint: Endpoint, params: Mapping[str, Any], signer: Signer, attempt: int
    ) -> Any:
        """A key create first waits for its sub-account's turn (`CreationGate`)."""
        async with self._turn(endpoint, params):
            return await self._send_resyncing(endpoint, params, signer, attempt)

    def _turn(
        self, endpoint: Endpoint, params: Mapping[str, Any]
    ) -> AbstractAsyncContextManager[None]:
        """The sub-account's turn for a key create; no wait for any other call."""
        if endpoint.creates_key:
            return self._creates.turn(str(params.get("email", "")))
        return nullcontext()

    async def _send_resyncing(
        self, endpoint: Endpoint, params: Mapping[str, Any], signer: Signer, attempt: int
    ) -> Any:
        """-1021 means Binance refused the request before acting on it, so resyncing, re-signing
        and resending is safe even for a write; a clock that stays off after TIMESTAMP_RESENDS
        resyncs fails this call only (with a hint to fix the clock)."""
        recv_window_ms = self._recv_window_ms
        for resend in range(TIMESTAMP_RESENDS + 1):
            signed_in = _Signed()
            try:
                return await self._send(
                    endpoint, params, signer, attempt, recv_window_ms, signed_in
                )
            except TimestampOutOfWindow:
                if resend == TIMESTAMP_RESENDS:
                    raise
                log.info("exchange.timestamp_refused", endpoint=endpoint.name, resend=resend + 1)
                await self._resync_after_refusal(signed_in.generation)
                if resend >= 1:
                    recv_window_ms = min(recv_window_ms * 2, MAX_RECV_WINDOW_MS)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        endpoint: Endpoint,
        params: Mapping[str, Any],
        signer: Signer,
        attempt: int,
        recv_window_ms: int,
        signed_in: _Signed,
    ) -> Any:
        if endpoint.signed:
            await self._resync_finished()
        reservation = await self._slot_and_weight(endpoint)
        started = time.perf_counter()
        status: int | str = "error"
        try:
            try:  # signed only once a connection is free: fresh timestamps
                signed_in.generation = self._sync_generation
                request = self._build_request(endpoint, params, signer, recv_window_ms)
                response = await self._on_wire(endpoint, request)
            finally:
                self._slots.release()
                self._pacer.release(reservation)
            status = response.status_code
            self._pacer.observe(reservation, _used_weight(endpoint, response))
            return self._interpret(endpoint, response, signer)
        except ExchangeError as exc:
            status = status if isinstance(status, int) else type(exc).__name__
            raise
        finally:
            log.info(
                "exchange.call",
                endpoint=endpoint.name,
                method=endpoint.method,
                weight=endpoint.weight,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                attempt=attempt,
            )

    async def _slot_and_weight(self, endpoint: Endpoint) -> Reservation:
        """A connection slot, then the call's weight reserved in the current window: weight
        is reserved only by a call that goes out now, so calls queued for a connection at a
        window boundary spend no budget of the window they missed. Returns holding a slot."""
        while True:
            await self._pacer.wait_for_room(endpoint.budget_key, endpoint.weight, endpoint.budget)
            await self._slots.acquire()
            reservation = self._pacer.try_acquire(
                endpoint.budget_key, endpoint.weight, endpoint.budget, in_flight=True
            )
            if reservation is not None:
                return reservation
            self._slots.release()  # the room went to calls that had a connection first

    # -- building requests -----------------------------------------------------------------

    def _build_request(
        self, endpoint: Endpoint, params: Mapping[str, Any], signer: Signer, recv_window_ms: int
    ) -> httpx.Request:
        """The request, with `signature` last over exactly the encoded string sent: the
        query string for GET/DELETE, the form body for POST."""
        encoded = percent_encode([(k, _wire(v)) for k, v in params.items() if v is not None])
        headers: dict[str, str] = {}
        if endpoint.signed:
            encoded = self._sign(encoded, signer, recv_window_ms)
            headers[API_KEY_HEADER] = signer.api_key
        if endpoint.method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return self._http.build_request(
                "POST", endpoint.path, content=encoded.encode(), headers=headers
            )
        url = f"{endpoint.path}?{encoded}" if encoded else endpoint.path
        return self._http.build_request(endpoint.method, url, headers=headers)

    def _sign(self, encoded: str, signer: Signer, recv_window_ms: int) -> str:
        tail = percent_encode({"recvWindow": recv_window_ms, "timestamp": self._timestamp_ms()})
        payload = f"{encoded}&{tail}" if encoded else tail
        signature = quote(signer.sign(payload.encode()), safe="")
        return f"{payload}&signature={signature}"

    # -- sending ---------------------------------------------------------------------------

    async def _on_wire(self, endpoint: Endpoint, request: httpx.Request) -> httpx.Response:
        """Transmit, counted as on the wire so that `aclose` waits for the answer."""
        self._on_the_wire += 1
        self._wire_idle.clear()
        try:
            return await self._transmit(endpoint, request)
        finally:
            self._on_the_wire -= 1
            if self._on_the_wire == 0:
                self._wire_idle.set()

    async def _transmit(self, endpoint: Endpoint, request: httpx.Request) -> httpx.Response:
        """Send, telling apart 'nothing was sent' (safe to retry) from 'it may have arrived'."""
        try:
            response = await self._http.send(request)
        except _NOTHING_SENT as exc:
            raise ConnectFailed(
                f"could not connect to {request.url.host} ({type(exc).__name__}); nothing was sent",
                endpoint=endpoint.name,
            ) from None
        except httpx.UnsupportedProtocol:
            raise ExchangeError(
                f"unsupported URL scheme in base URL {request.url.scheme!r}", endpoint=endpoint.name
            ) from None
        except httpx.TransportError as exc:
            self._calls[endpoint.name] += 1
            raise self._lost(endpoint, type(exc).__name__) from None
        self._calls[endpoint.name] += 1
        return response

    def _lost(self, endpoint: Endpoint, what: str, http_status: int | None = None) -> ExchangeError:
        """The error for a request that may have reached Binance but got no usable answer."""
        if endpoint.mutating:
            return AmbiguousOutcome(
                f"{endpoint.method} {endpoint.path} failed after sending ({what})",
                endpoint=endpoint.name,
                http_status=http_status,
                hint=HINT_AMBIGUOUS,
            )
        error = ServerError if http_status else NetworkError
        return error(
            f"{endpoint.method} {endpoint.path} failed ({what})",
            endpoint=endpoint.name,
            http_status=http_status,
            hint="Binance or the network is having trouble; try again later",
        )

    # -- interpreting answers --------------------------------------------------------------

    def _interpret(self, endpoint: Endpoint, response: httpx.Response, signer: Signer) -> Any:
        status = response.status_code
        if 200 <= status < 300:
            return self._json(endpoint, response)
        if status >= 500:
            raise self._lost(endpoint, f"HTTP {status}", http_status=status)
        raise self._refusal(endpoint, response, signer)

    def _refusal(
        self, endpoint: Endpoint, response: httpx.Response, signer: Signer
    ) -> ExchangeError:
        """A 4xx answer as the error its code stands for in `ERROR_KINDS`: HTTP 429 and 418 by
        their status (their body is not read), every other answer by the code in its body."""
        status = response.status_code
        code: int | None = None
        msg = ""
        if status in ERROR_KINDS:
            kind = ERROR_KINDS[status]
        else:
            code, msg = self._error_body(endpoint, response)
            kind = error_kind(code, endpoint.name)
        if issubclass(kind.type, RateLimited):
            return self._throttled(endpoint, response, kind.type, kind.hint)
        msg = _clean(msg, signer).strip().rstrip(".")
        return kind.type(
            f"Binance refused the call: {msg}" if msg else "Binance refused the call",
            code=code,
            endpoint=endpoint.name,
            http_status=status,
            hint=kind.hint_for(master_key=signer is self._signer),
        )

    def _throttled(
        self,
        endpoint: Endpoint,
        response: httpx.Response,
        error: type[RateLimited],
        hint: str | None,
    ) -> RateLimited:
        """An IP ban (418) as it is; a 429 or -1003 also pauses the endpoint until Retry-After."""
        if issubclass(error, IpBanned):
            return error(
                "this IP is banned by Binance for calling on after 429s",
                retry_after=_retry_after(response),
                endpoint=endpoint.name,
                http_status=response.status_code,
                hint=hint,
            )
        self._rate_limited[endpoint.name] += 1
        wait_s = self._pacer.block(endpoint.budget_key, _retry_after(response))
        return error(
            f"over the weight budget of {endpoint.method} {endpoint.path}",
            retry_after=wait_s,
            endpoint=endpoint.name,
            http_status=response.status_code,
            hint=hint,
        )

    def _json(self, endpoint: Endpoint, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise self._malformed(endpoint, "a body that is not JSON", response) from None

    def _error_body(self, endpoint: Endpoint, response: httpx.Response) -> tuple[int, str]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("code"), int):
            return body["code"], str(body.get("msg", ""))
        raise MalformedResponse(
            f"HTTP {response.status_code} without a Binance error body",
            endpoint=endpoint.name,
            http_status=response.status_code,
        )

    def _parse(self, endpoint: Endpoint, parse: Callable[[Any], Any], body: Any) -> Any:
        try:
            return parse(body)
        except parsing.ShapeError as exc:
            raise self._malformed(endpoint, f"an unexpected body ({exc})", None) from None

    def _malformed(
        self, endpoint: Endpoint, what: str, response: httpx.Response | None
    ) -> MalformedResponse:
        status = response.status_code if response is not None else None
        if endpoint.mutating:
            return MalformedWriteResponse(
                f"Binance accepted the call but answered with {what}",
                endpoint=endpoint.name,
                http_status=status,
                hint=HINT_AMBIGUOUS,
            )
        return MalformedResponse(
            f"Binance answered with {what}", endpoint=endpoint.name, http_status=status
        )


def _clean(msg: str, signer: Signer) -> str:
    """Binance's message, bounded, with no signature, private key or full API key in it."""
    text = scrub_text(msg[:300])
    return text.replace(signer.api_key, mask_key(signer.api_key)) if signer.api_key else text


def percent_encode(params: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> str:
    """`name=value` pairs joined by '&', encoded as Binance's own example does: UTF-8, every
    byte outside [-_.~A-Za-z0-9] as %XX (a space is %20, never '+')."""
    return urlencode(params, quote_via=quote)


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    return str(value)


def _used_weight(endpoint: Endpoint, response: httpx.Response) -> int | None:
    value = response.headers.get(USED_WEIGHT_HEADER[endpoint.limit])
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (fractional values like "0.4" allowed), None when absent."""
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
