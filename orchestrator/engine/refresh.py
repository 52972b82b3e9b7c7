"""Refresh: read the live account through the `Exchange`, each fact once.

Sub-accounts are listed once; the keys of every sub-account the plan names are listed (all
pages), and each key's IP restriction is fetched as soon as its sub-account's list arrives.
Different endpoints have independent rate-limit budgets, so the listing of one sub-account
and the IP lookups of another proceed in parallel; the client paces each endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC

from orchestrator.domain.model import Desired, Live, LiveKey, SinkHolding
from orchestrator.engine.diff import former_sink, resolve_email, with_takeovers
from orchestrator.exchange.interface import Exchange
from orchestrator.exchange.models import ApiKey, Permission
from orchestrator.sinks import Sink
from orchestrator.store.state import State

Progress = Callable[[int, int], None]  # (facts fetched, facts known so far)
SinkOpener = Callable[[str], Sink]


class _Counter:
    def __init__(self, progress: Progress | None) -> None:
        self.done = 0
        self.total = 0
        self._progress = progress

    def expect(self, n: int) -> None:
        self.total += n
        self._report()

    def tick(self) -> None:
        self.done += 1
        self._report()

    def _report(self) -> None:
        if self._progress:
            self._progress(self.done, self.total)


async def refresh(
    exchange: Exchange,
    desired: Desired,
    prior: State | None,
    *,
    progress: Progress | None = None,
    every_subaccount: bool = False,
    open_sink: SinkOpener | None = None,
) -> Live:
    """The live account; the keys of the plan's sub-accounts, or of all of them with
    `every_subaccount` (the audit looks for keys no plan knows about); with `open_sink`,
    what each planned key's sink holds."""
    counter = _Counter(progress)
    counter.expect(1)
    subaccounts = tuple(await exchange.list_all_subaccounts())
    counter.tick()
    bare = Live(subaccounts=subaccounts)
    emails = sorted(
        {e for s in desired.subaccounts if (e := resolve_email(s, bare, prior)) is not None}
        | ({s.email for s in subaccounts} if every_subaccount else set())
    )
    counter.expect(len(emails))
    listing = asyncio.gather(*(_keys_of(exchange, email, counter) for email in emails))
    evidence_of = with_takeovers(desired, prior)
    results, material = await asyncio.gather(listing, _holdings(evidence_of, prior, open_sink))
    return Live(
        subaccounts=subaccounts, keys=dict(zip(emails, results, strict=True)), material=material
    )


async def _holdings(
    desired: Desired, prior: State | None, open_sink: SinkOpener | None
) -> dict[str, SinkHolding]:
    if open_sink is None:
        return {}
    return await asyncio.to_thread(read_holdings, desired, open_sink, prior)


def read_holdings(
    desired: Desired, open_sink: SinkOpener, prior: State | None = None
) -> dict[str, SinkHolding]:
    """What each planned key's sink holds (for a renamed label, under its old name too; for
    a key whose `secrets:` changed, in the sink state recorded too). A sink that cannot be
    read says why: the diff then deletes nothing of that label."""
    holdings: dict[str, SinkHolding] = {}
    for key in desired.keys():
        former = f"{key.subaccount}/{key.former_label}" if key.former_label else None
        holding = _holding(open_sink, key.sink, key.address, former)
        moved = former_sink(key, prior)
        if moved is not None:
            holding = replace(holding, moved_from=_holding(open_sink, moved, key.address, None))
        holdings[key.address] = holding
    return holdings


def _holding(open_sink: SinkOpener, spec: str, address: str, former: str | None) -> SinkHolding:
    current: str | None = None
    generations: dict[str, int] = {}
    under_former = False
    try:
        sink = open_sink(spec)
        for where in [address, former] if former else [address]:
            bot_facing = sink.read_current(where)
            found = [m for m in [*sink.read_held(where), bot_facing] if m is not None]
            generations |= {m.api_key: m.generation for m in found if m.api_key}
            under_former = under_former or (where == former and bool(found))
            if current is None and bot_facing is not None:
                current = bot_facing.api_key
    except Exception as exc:  # noqa: BLE001 - an unreadable sink is no evidence, not a failure
        return SinkHolding(unreadable=f"{type(exc).__name__}: {exc}")
    return SinkHolding(current=current, generations=generations, under_former_label=under_former)


async def keys_of(exchange: Exchange, email: str) -> tuple[LiveKey, ...]:
    """The live keys of one sub-account, each with its IP restriction."""
    return await _keys_of(exchange, email, _Counter(None))


async def _keys_of(exchange: Exchange, email: str, counter: _Counter) -> tuple[LiveKey, ...]:
    rows = await exchange.list_all_api_keys(email)
    counter.tick()
    counter.expect(len(rows))
    keys = await asyncio.gather(*(_with_ips(exchange, row, counter) for row in rows))
    return tuple(keys)


async def _with_ips(exchange: Exchange, row: ApiKey, counter: _Counter) -> LiveKey:
    restriction = await exchange.get_ip_restriction(row.email, row.api_key)
    counter.tick()
    return LiveKey(
        email=row.email,
        api_name=row.api_name,
        api_key=row.api_key,
        permissions=row.permissions,
        restricted=restriction.restricted,
        ips=tuple(sorted(restriction.ips)) if restriction.restricted else (),
        created_ms=row.created_ms,
    )


def live_from_state(state: State | None, existing_emails: Iterable[str] = ()) -> Live:
    """What state believes is live, for `plan --no-refresh` (no call to the exchange).

    Sub-accounts named by email in the plan are assumed to exist: only Binance's web UI makes
    them, and without a refresh there is no one to ask.
    """
    from orchestrator.exchange.models import SubAccount

    subs = set(existing_emails)
    if state is not None:
        subs |= {r.email for r in state.subaccounts.values()}
        subs |= {r.email for r in state.keys.values()}
    records = state.keys.values() if state else ()
    keys: dict[str, list[LiveKey]] = {email: [] for email in subs}
    for record in records:
        perms = frozenset(Permission(p) for p in record.permissions)
        current = LiveKey(
            email=record.email,
            api_name=record.api_name,
            api_key=record.api_key,
            permissions=perms,
            restricted=bool(record.ips),
            ips=tuple(sorted(record.ips)),
            created_ms=int(record.created_at.astimezone(UTC).timestamp() * 1000),
        )
        keys[record.email].append(current)
        for old in record.previous:
            keys[record.email].append(
                LiveKey(
                    record.email,
                    old.api_name,
                    old.api_key,
                    perms,
                    bool(record.ips),
                    tuple(sorted(record.ips)),
                )
            )
    return Live(
        subaccounts=tuple(SubAccount(email=e) for e in sorted(subs)),
        keys={e: tuple(ks) for e, ks in keys.items()},
    )
