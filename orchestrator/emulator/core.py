"""The Binance emulator, independent of any transport: `Emulator.handle(EmuRequest)`.

A request goes through: routing, fault draw, authentication (API key, caller IP, timestamp,
signature), the endpoint's weight budget, the handler, persistence, then the fault's
after-effect. The emulator may hold several master accounts (`add_master`), each owning its
sub-accounts; a request is served by the account whose master or sub-account key signed it,
and UID budgets are per account, as Binance's /sapi limits are per account UID. Weight is only counted for requests that pass authentication (a refused
signature costs nothing), and a request refused with 429 costs nothing either. Over a budget
the answer is always 429 with Retry-After: /sapi limits never escalate to 418 IP bans. Key
creates are also paced per sub-account (about one a second, scaled by `time_scale`); a create
that comes too soon gets the same 429 / -1003 answer (see ratelimit.CreationPace).
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from orchestrator.emulator import admin, errors, faults, persist
from orchestrator.emulator.accounts import Accounts, ApiKey
from orchestrator.emulator.errors import BinanceError
from orchestrator.emulator.faults import FaultPlan
from orchestrator.emulator.handlers import (
    IP_ADD,
    IP_RESTRICTION_MODES,
    MASTER_ONLY,
    Call,
    run,
    wire_integer,
)
from orchestrator.emulator.master import generate_master, master_from_env, restrict
from orchestrator.emulator.ratelimit import CreationPace, FixedWindowLimiter, format_retry_after
from orchestrator.emulator.signing import payload_and_signature, verify
from orchestrator.exchange.endpoints import ALL, USED_WEIGHT_HEADER, Endpoint

PING = Endpoint("ping", "GET", "/api/v3/ping", 1, "API", False, signed=False)
ROUTES: dict[tuple[str, str], Endpoint] = {(e.method, e.path): e for e in (*ALL, PING)}
ENDPOINT_NAMES = frozenset(e.name for e in ROUTES.values())
API_KEY_HEADER = "x-mbx-apikey"
API_KEY_FORMAT = re.compile(r"^[A-Za-z0-9]{1,128}$")
MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = 5_000
MAX_AHEAD_MS = 1_000
JSON_TYPE = "application/json;charset=UTF-8"
ADMIN_TOKEN_HEADER = "X-Emulator-Admin-Token"
MAX_ADVANCE_S = 100 * 365 * 86_400  # one step of the admin clock: a century at most
MAX_INJECTED = 10_000
SUB_USER_ID_BLOCK = 100_000_000
MASTER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
JOURNAL_LIMIT = 500  # journal entries between two full snapshots of the data file

#: (query parameters, all parameters), see `_params`
Params = tuple[dict[str, str], dict[str, str]]


@dataclass(frozen=True)
class EmuRequest:
    """A request as received. `raw_query` holds the query bytes decoded as latin-1."""

    method: str
    path: str
    raw_query: str = ""
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: str = "127.0.0.1"


@dataclass
class EmuResponse:
    """The answer; the transport waits `delay_s` first, and on `drop` closes the connection
    without answering (the core has already committed or not, per the fault)."""

    status: int
    headers: dict[str, str]
    body: bytes
    delay_s: float = 0.0
    drop: bool = False

    def json(self):
        return json.loads(self.body)


class Emulator:
    def __init__(
        self,
        data_path: Path | str | None = None,
        *,
        time_scale: float = 1.0,
        latency_ms: float = 0,
        fault_rate: float = 0.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        master: ApiKey | None = None,
        master_ips: Iterable[str] = (),
        persist_master: bool = False,
        trusted_ip_header: str | None = None,
        latency_spike_s: float = 1.0,
        admin_token: str | None = None,
        ip_restriction_mode: str = IP_ADD,
        key_creation_interval_s: float | None = None,
    ) -> None:
        """`key_creation_interval_s`: the least time between two key creations in one
        sub-account (default 1 s divided by `time_scale`; 0 turns the limit off)."""
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if ip_restriction_mode not in IP_RESTRICTION_MODES:
            raise ValueError(
                f"ip_restriction_mode must be one of {', '.join(IP_RESTRICTION_MODES)}"
            )
        self.ip_restriction_mode = ip_restriction_mode
        self.data_path = Path(data_path) if data_path is not None else None
        self.time_scale = time_scale
        self.latency_s = latency_ms / 1000
        self.trusted_ip_header = trusted_ip_header.lower() if trusted_ip_header else None
        self.admin_token = admin_token
        self.faults = FaultPlan(fault_rate, seed, latency_spike_s)
        self.limiter = FixedWindowLimiter(60.0 / time_scale)
        if key_creation_interval_s is None:
            key_creation_interval_s = 1.0 / time_scale
        self.creation_pace = CreationPace(key_creation_interval_s)
        self._clock = clock
        self._offset = 0.0
        self._lock = threading.RLock()
        self.stats = _Stats()
        self._journaled = 0
        #: further master accounts by name, each with its own sub-accounts (see add_master)
        self.masters: dict[str, Accounts] = {}
        self.accounts, self.master_generated, changed = self._load(
            master, master_ips, persist_master
        )
        if changed:
            self._save()

    # ---- public API

    @property
    def master(self) -> ApiKey:
        return self.accounts.master

    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock (server time and rate-limit windows) forward; anything but
        a number of seconds from 0 to MAX_ADVANCE_S is refused with ValueError."""
        step = _forward_step(seconds)
        with self._lock:
            self._offset += step

    def inject(self, kind: str, endpoint_name: str | None = None, count: int = 1) -> None:
        """Queue `count` faults of `kind` (see faults.py) for the next matching requests."""
        if endpoint_name is not None and endpoint_name not in ENDPOINT_NAMES:
            raise ValueError(f"unknown endpoint {endpoint_name!r}; see exchange/endpoints.py")
        with self._lock:
            self.faults.inject(kind, endpoint_name, count)

    def add_master(self, name: str) -> ApiKey:
        """The master key of the account `name`, made (with a new HMAC master key and no
        sub-accounts) if the emulator has none by that name yet. Idempotent."""
        if not isinstance(name, str) or not MASTER_NAME.match(name):
            raise ValueError("master account names are 1 to 32 letters, digits, '-' or '_'")
        with self._lock:
            if name not in self.masters:
                accounts = Accounts(generate_master(int(self.now() * 1000)))
                # sub-account UIDs stay unique across the emulator's accounts
                accounts.next_sub_user_id += SUB_USER_ID_BLOCK * (len(self.masters) + 1)
                self.masters[name] = accounts
                self._save()
            return self.masters[name].master

    def account(self, master: str | None = None) -> Accounts:
        """The account of the master named `master` (None: the first master)."""
        if master is None:
            return self.accounts
        try:
            return self.masters[master]
        except KeyError:
            raise ValueError(f"no master account named {master!r}") from None

    def add_subaccount(self, email: str, master: str | None = None) -> None:
        """Create a sub-account the way Binance's web UI does (no API endpoint exists for
        non-virtual sub-accounts), under the master named `master`. Idempotent."""
        self.add_subaccounts([email], master)

    def add_subaccounts(self, emails: Iterable[str], master: str | None = None) -> None:
        """`add_subaccount` for many at once, saving the data file once. An email belongs to
        one account: one another master owns is refused with ValueError."""
        with self._lock:
            accounts = self.account(master)
            given = False
            for email in emails:
                if not isinstance(email, str):
                    raise TypeError("emails must be strings")
                owner = self._owner_of_email(email)
                if owner is not None and owner is not accounts:
                    raise ValueError(f"{email} is a sub-account of another master account")
                accounts.add_existing(email, int(self.now() * 1000))
                given = True
            if given:  # a full snapshot, which also folds the journal in
                self._save()

    def handle(self, request: EmuRequest) -> EmuResponse:
        endpoint = ROUTES.get((request.method.upper(), request.path))
        if endpoint is not None:
            # parsed in the caller's thread: a large body never holds up the other clients
            params = _params(_query_bytes(request.raw_query), request.body)
            with self._lock:
                return self._handle_endpoint(endpoint, request, params)
        if self.admin_token is not None and request.path.startswith("/_emulator/"):
            return self._admin(request)
        return self._error(errors.not_found(request.path))

    # ---- the pipeline

    def _handle_endpoint(
        self, endpoint: Endpoint, request: EmuRequest, params: Params
    ) -> EmuResponse:
        fault = self.faults.draw(endpoint.name)
        delay = self.latency_s + (self.faults.spike() if fault == faults.LATENCY else 0.0)
        ip = self._client_ip(request)
        budget_id = self._budget_id(endpoint, request, ip)
        if fault in (faults.DROP_BEFORE, faults.ERROR_BEFORE, faults.RATE_LIMIT):
            answer = self._early_fault(fault, endpoint, budget_id)
        else:
            answer = self._process(endpoint, request, params, ip, budget_id)
        if fault == faults.ERROR_AFTER:
            answer = self._server_error(endpoint, budget_id)
        elif fault == faults.DROP_AFTER:
            answer = EmuResponse(0, {}, b"", drop=True)
        answer.delay_s = delay
        self.stats.count(endpoint.name, answer.status)
        return answer

    def _process(
        self, endpoint: Endpoint, request: EmuRequest, parsed: Params, ip: str, budget_id: tuple
    ) -> EmuResponse:
        query = _query_bytes(request.raw_query)
        query_params, params = parsed
        now = self.now()
        try:
            caller = self._authenticate(endpoint, request, params, query, ip, now)
            self._charge(endpoint, budget_id, now)
            accounts = self._owner_of_key(caller) if caller else self.accounts
            call = Call(
                params,
                query_params,
                int(now * 1000),
                caller or self.master,
                self.ip_restriction_mode,
                lambda email: self.creation_pace.wait_s(email, now),
            )
            result = run(endpoint.name, accounts, call)
        except errors.TooManyRequests as exc:
            return self._too_many(endpoint, budget_id, exc.retry_after_s)
        except BinanceError as exc:
            return self._error(exc, endpoint, budget_id)
        if endpoint.creates_key:
            self.creation_pace.record(params.get("email", ""), now)
        if endpoint.mutating:
            self._save(changed=params.get("email") or result.get("email"), accounts=accounts)
        return self._answer(200, result, endpoint, budget_id)

    def _early_fault(self, fault: str, endpoint: Endpoint, budget_id: tuple) -> EmuResponse:
        if fault == faults.DROP_BEFORE:
            return EmuResponse(0, {}, b"", drop=True)
        if fault == faults.ERROR_BEFORE:
            return self._server_error(endpoint, budget_id)
        return self._too_many(endpoint, budget_id)

    # ---- authentication

    def _authenticate(
        self,
        endpoint: Endpoint,
        request: EmuRequest,
        params: dict[str, str],
        query: bytes,
        ip: str,
        now: float,
    ) -> ApiKey | None:
        if not endpoint.signed:
            return None
        key = self._caller(request, ip)
        if endpoint.name in MASTER_ONLY and not self._is_master(key):
            raise errors.unauthorized()
        _check_timestamp(params, now)
        payload, signature = payload_and_signature(query, request.body)
        if not signature:
            raise errors.missing("signature")
        if not verify(key, payload, signature):
            raise errors.bad_signature()
        return key

    def _caller(self, request: EmuRequest, ip: str) -> ApiKey:
        api_key = _header(request, API_KEY_HEADER)
        if api_key is None or not API_KEY_FORMAT.fullmatch(api_key):
            raise errors.bad_key_format()
        key = self._find_key(api_key)
        if key is None or not key.allows_ip(ip):
            raise errors.unauthorized()
        return key

    def _all_accounts(self) -> list[Accounts]:
        return [self.accounts, *self.masters.values()]

    def _find_key(self, api_key: str) -> ApiKey | None:
        for accounts in self._all_accounts():
            key = accounts.find_key(api_key)
            if key is not None:
                return key
        return None

    def _is_master(self, key: ApiKey) -> bool:
        return any(key is accounts.master for accounts in self._all_accounts())

    def _owner_of_key(self, key: ApiKey) -> Accounts:
        """The account a key belongs to: its own if a master's, else its sub-account's."""
        for accounts in self._all_accounts():
            if key is accounts.master or (key.email is not None and key.email in accounts.subs):
                return accounts
        return self.accounts

    def _owner_of_email(self, email: str) -> Accounts | None:
        for accounts in self._all_accounts():
            if email in accounts.subs:
                return accounts
        return None

    def master_name(self, key: ApiKey) -> str:
        """The name of the account whose master `key` is ("master" for the first one)."""
        for name, accounts in self.masters.items():
            if key is accounts.master:
                return f"master:{name}"
        return "master"

    def _client_ip(self, request: EmuRequest) -> str:
        if self.trusted_ip_header:
            forwarded = _header(request, self.trusted_ip_header)
            if forwarded:
                return forwarded.split(",")[0].strip()
        return request.client_ip

    # ---- rate limits

    def _budget_id(self, endpoint: Endpoint, request: EmuRequest, ip: str) -> tuple:
        """UID budgets belong to the account of the calling key, IP budgets to the caller IP."""
        if endpoint.limit == "UID":
            key = self._find_key(_header(request, API_KEY_HEADER) or "")
            account = None
            if key is not None:
                account = self.master_name(key) if self._is_master(key) else key.email
            if account is not None:
                return (endpoint.budget_key, "uid", account)
        return (endpoint.budget_key, "ip", ip)

    def _charge(self, endpoint: Endpoint, budget_id: tuple, now: float) -> None:
        if not self.limiter.try_consume(budget_id, endpoint.weight, endpoint.budget, now):
            raise errors.TooManyRequests()

    def _too_many(
        self, endpoint: Endpoint, budget_id: tuple, retry_after_s: float | None = None
    ) -> EmuResponse:
        """429; Retry-After is the time left in the budget's window unless given."""
        if retry_after_s is None:
            retry_after_s = self.limiter.retry_after(self.now())
        retry = format_retry_after(retry_after_s, self.time_scale)
        refusal = errors.too_many_requests(endpoint.path, endpoint.budget)
        answer = self._error(refusal, endpoint, budget_id)
        answer.headers["Retry-After"] = retry
        return answer

    # ---- answers

    def _answer(
        self,
        status: int,
        body: dict,
        endpoint: Endpoint | None = None,
        budget_id: tuple | None = None,
    ) -> EmuResponse:
        headers = {"Content-Type": JSON_TYPE}
        if endpoint is not None and budget_id is not None:
            used = self.limiter.used(budget_id, self.now())
            headers[USED_WEIGHT_HEADER[endpoint.limit]] = str(used)
        return EmuResponse(status, headers, json.dumps(body).encode())

    def _error(
        self, exc: BinanceError, endpoint: Endpoint | None = None, budget_id: tuple | None = None
    ) -> EmuResponse:
        return self._answer(exc.status, exc.body(), endpoint, budget_id)

    def _server_error(self, endpoint: Endpoint, budget_id: tuple) -> EmuResponse:
        exc = errors.SERVER_ERRORS[self.faults.server_error_index()]
        return self._answer(exc.status, exc.body(), endpoint, budget_id)

    # ---- admin (opt-in with a token, for tests that drive `emulator serve` in a subprocess)

    def _admin(self, request: EmuRequest) -> EmuResponse:
        if not self._admin_authorized(request):
            msg = f"Admin routes need the {ADMIN_TOKEN_HEADER} header printed at start."
            return self._answer(401, {"code": -2015, "msg": msg})
        try:
            route, data = admin.admin_request(
                request.method, request.path, request.raw_query, request.body
            )
            try:
                with self._lock:
                    return self._admin_action(route, request.method, data)
            except KeyError as exc:
                raise admin.bad_request(route, f"missing {exc}", -1102) from None
            except (ValueError, TypeError) as exc:
                raise admin.bad_request(route, str(exc)) from None
        except admin.AdminRequestError as exc:
            return self._answer(exc.status, {"code": exc.code, "msg": exc.message})

    def _admin_authorized(self, request: EmuRequest) -> bool:
        given = _header(request, ADMIN_TOKEN_HEADER.lower()) or ""
        expected = self.admin_token or ""
        return bool(expected) and hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), expected.encode()
        )

    def _admin_action(self, route: admin.AdminRoute, method: str, data: dict) -> EmuResponse:
        if route.path == "/_emulator/stats":
            stats = self.stats.to_json()
            if method.upper() == "POST":  # read and reset in one step
                self.stats = _Stats()
            return self._answer(200, stats)
        if route.path == "/_emulator/inject":
            count = _whole_number("count", data.get("count", 1), 1, MAX_INJECTED)
            self.inject(data["kind"], data.get("endpoint"), count)
        elif route.path == "/_emulator/subaccount":
            emails = admin.subaccount_emails(route, data)
            self.add_subaccounts(emails, admin.subaccount_master(route, data))
        elif route.path == "/_emulator/master":
            master = self.add_master(admin.master_name(route, data))
            return self._answer(200, {"apiKey": master.api_key, "secretKey": master.secret})
        elif route.path == "/_emulator/advance":
            self.advance(data["seconds"])
        return self._answer(200, {})

    # ---- persistence

    def _load(
        self, master: ApiKey | None, master_ips: Iterable[str], persist_given: bool
    ) -> tuple[Accounts, bool, bool]:
        """(the first master's account, whether its key was generated, whether the data file
        must be written). The master is the one given, else the environment's, else the data
        file's, else a new one. A master from the environment is never written to the data
        file; a given one only with `persist_master`."""
        data = persist.load(self.data_path) if self.data_path else None
        stored = (data or {}).get("master")
        given = master or master_from_env()
        generated = False
        if given is not None:
            chosen = given
        elif stored:
            chosen = ApiKey.from_json(stored)
        else:
            chosen, generated = generate_master(int(self.now() * 1000)), True
        keep = given is None or (persist_given and master is not None)
        self._stored_master = chosen.to_json() if keep else stored
        chosen = restrict(chosen, master_ips)
        accounts = Accounts.from_json(data, chosen) if data else Accounts(chosen)
        for name, raw in ((data or {}).get("masters") or {}).items():
            self.masters[name] = Accounts.from_json(raw, ApiKey.from_json(raw["master"]))
        return accounts, generated, keep and self._stored_master != stored

    def _save(self, accounts: Accounts | None = None, changed: str | None = None) -> None:
        """Persist: the changed sub-account to the journal when one is named and a snapshot
        exists, else (and every JOURNAL_LIMIT entries) a full snapshot. `accounts` is the
        account the change belongs to (default: the first master's)."""
        if self.data_path is None:
            return
        accounts = accounts or self.accounts
        sub = accounts.subs.get(changed) if changed else None
        if sub is not None and self.data_path.exists():
            entry: dict[str, Any] = {
                "sub": sub.to_json(),
                "top": {
                    "emailToken": accounts.email_token,
                    "nextSubUserId": accounts.next_sub_user_id,
                },
            }
            name = self._name_of(accounts)
            if name is not None:
                entry["master"] = name
            persist.append(self.data_path, entry)
            self._journaled += 1
            if self._journaled < JOURNAL_LIMIT:
                return
        self._journaled = 0
        data = self.accounts.to_json(include_master=False)
        data["master"] = self._stored_master
        if self.masters:
            data["masters"] = {
                name: extra.to_json(include_master=True) for name, extra in self.masters.items()
            }
        persist.save(self.data_path, data)

    def _name_of(self, accounts: Accounts) -> str | None:
        for name, extra in self.masters.items():
            if extra is accounts:
                return name
        return None


class _Stats:
    """Requests received per endpoint, and how many were answered 429 (for benchmarks)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.calls: dict[str, int] = {}
        self.rate_limited: dict[str, int] = {}

    def count(self, endpoint_name: str, status: int) -> None:
        self.calls[endpoint_name] = self.calls.get(endpoint_name, 0) + 1
        if status == 429:
            self.rate_limited[endpoint_name] = self.rate_limited.get(endpoint_name, 0) + 1

    def to_json(self) -> dict:
        return {
            "since": self.started,
            "calls": dict(sorted(self.calls.items())),
            "calls_total": sum(self.calls.values()),
            "rate_limited": dict(sorted(self.rate_limited.items())),
            "rate_limited_total": sum(self.rate_limited.values()),
        }


def _forward_step(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
    if not 0 <= seconds <= MAX_ADVANCE_S:  # NaN fails both comparisons
        raise ValueError(f"seconds must be from 0 to {MAX_ADVANCE_S}, not {seconds}")
    return float(seconds)


def _whole_number(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return value


def _check_timestamp(params: dict[str, str], now: float) -> None:
    raw = params.get("timestamp", "")
    if raw == "":
        raise errors.missing("timestamp")
    timestamp = wire_integer("timestamp", raw)
    window = _recv_window(params.get("recvWindow", ""))
    server_ms = int(now * 1000)
    if timestamp >= server_ms + MAX_AHEAD_MS:
        raise errors.ahead_of_server()
    if server_ms - timestamp > window:
        raise errors.outside_recv_window()


def _recv_window(raw: str) -> int:
    if raw == "":
        return DEFAULT_RECV_WINDOW
    window = wire_integer("recvWindow", raw)
    if window > MAX_RECV_WINDOW:
        raise errors.recv_window_too_large()
    return window


def _query_bytes(raw_query: str) -> bytes:
    try:
        return raw_query.encode("latin-1")
    except UnicodeEncodeError:
        return raw_query.encode("utf-8")


def _params(query: bytes, body: bytes) -> Params:
    """(query parameters, all parameters); a parameter in both takes the query's value."""
    query_params = _parse(query)
    merged = _parse(body)
    merged.update(query_params)
    return query_params, merged


def _parse(raw: bytes) -> dict[str, str]:
    text = raw.decode("utf-8", errors="replace")
    params: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        params.setdefault(name, value)
    return params


def _header(request: EmuRequest, name: str) -> str | None:
    for key, value in request.headers.items():
        if key.lower() == name:
            return value
    return None
