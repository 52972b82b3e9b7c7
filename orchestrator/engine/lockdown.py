"""Lockdown: delete every key in scope, managed or not, as fast as the rate limits allow.

Binance's advice when a key may be stolen is to delete all keys. Listing and deleting are
different endpoints with separate budgets, so sub-accounts are listed and their keys deleted
concurrently; the client paces each endpoint. Every delete is journaled and audit-logged;
sinks mark the material of managed keys revoked (a sink that cannot is reported, not fatal:
the key is gone either way); state forgets the deleted keys.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass

from orchestrator.engine import transitions
from orchestrator.engine.recovery import drop_material
from orchestrator.exchange.errors import ExchangeError
from orchestrator.exchange.interface import Exchange
from orchestrator.exchange.models import ApiKey
from orchestrator.store.audit import mask_key
from orchestrator.store.backend import AuditTrail, WriteAheadJournal
from orchestrator.store.state import State


@dataclass(frozen=True)
class Deleted:
    email: str
    api_name: str
    api_key: str
    managed_as: str | None
    error: str | None = None
    warning: str | None = None  # deleted, but its material could not be marked revoked


class ScopeError(Exception):
    """A sub-account named for lockdown does not exist."""


async def scope_emails(
    exchange: Exchange, names: Collection[str], plan_emails: dict[str, str]
) -> list[str]:
    """The emails in scope: every sub-account of the account, or those named (by plan name
    or email)."""
    listed = [s.email for s in await exchange.list_all_subaccounts()]
    if not names:
        return sorted(listed)
    wanted = []
    for name in names:
        email = plan_emails.get(name, name)
        if email not in listed:
            raise ScopeError(f"no sub-account {name!r} on this account")
        wanted.append(email)
    return sorted(set(wanted))


async def keys_in_scope(exchange: Exchange, emails: Collection[str]) -> dict[str, list[ApiKey]]:
    """Every live key of each sub-account in scope, by email (listed concurrently)."""
    listed = await asyncio.gather(*(exchange.list_all_api_keys(e) for e in emails))
    return dict(zip(emails, listed, strict=True))


def managed_addresses(state: State) -> dict[str, str]:
    """The plan address state files each key under, current or kept in grace, by api key."""
    addresses = {p.api_key: a for a, r in state.keys.items() for p in r.previous}
    return addresses | {r.api_key: a for a, r in state.keys.items()}


async def lockdown(
    exchange: Exchange,
    emails: Collection[str],
    *,
    state: State,
    journal: WriteAheadJournal,
    audit: AuditTrail,
    open_sink: Callable,
    on_deleted: Callable[[Deleted], None] | None = None,
) -> tuple[list[Deleted], State]:
    """Delete every key of `emails`. Returns what was deleted (or failed) and the state
    without the deleted keys (unsaved)."""
    forgotten = [state]
    addresses = managed_addresses(state)

    async def wipe(email: str) -> list[Deleted]:
        keys = await exchange.list_all_api_keys(email)
        return list(await asyncio.gather(*(delete(k) for k in keys)))

    async def delete(key: ApiKey) -> Deleted:
        address = addresses.get(key.api_key)
        op = uuid.uuid4().hex
        journal.intent(
            op,
            {
                "op": "lockdown_delete",
                "email": key.email,
                "api_key": key.api_key,
                "api_name": key.api_name,
            },
        )
        try:
            await exchange.delete_api_key(key.email, key.api_key)
        except ExchangeError as exc:
            journal.outcome(op, error=exc)
            audit.append(
                "lockdown_delete",
                label=key.api_name,
                api_key=key.api_key,
                outcome="failed",
                detail=str(exc),
            )
            result = Deleted(key.email, key.api_name, key.api_key, address, str(exc))
        else:
            journal.outcome(op, result={"deleted": mask_key(key.api_key)})
            audit.append(
                "lockdown_delete",
                label=key.api_name,
                api_key=key.api_key,
                detail={"email": key.email, "managed_as": address},
            )
            forgotten[0], slots = transitions.key_forgotten(forgotten[0], key.api_key)
            warnings = drop_material(open_sink, slots, key.api_key)
            result = Deleted(
                key.email, key.api_name, key.api_key, address, warning="; ".join(warnings) or None
            )
        if on_deleted:
            on_deleted(result)
        return result

    results = await asyncio.gather(*(wipe(e) for e in emails))
    return [d for batch in results for d in batch], forgotten[0]
