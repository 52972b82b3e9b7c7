"""Reconciling the write-ahead journal after a crash, before any plan or apply.

An intent without an outcome means the process died around a mutating call. Only creates
need work here: everything else the diff finds again from live state. For a create we ask
the exchange whether a key with the intended apiName exists:

- not live: nothing happened; pending material is discarded;
- live, ed25519: its private key is in the sink as pending (it was written before the
  public key was registered), so the key is adopted: material completed, state recorded,
  promoted (for a rotation, the old key becomes previous with its grace);
- live, hmac: its secret existed only in the lost response, so the key is deleted again and
  the next apply creates a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from orchestrator.engine.changeset import Action
from orchestrator.exchange.interface import Exchange
from orchestrator.exchange.models import ApiKey
from orchestrator.sinks import Sink
from orchestrator.store.backend import AuditTrail, WriteAheadJournal
from orchestrator.store.state import KeyRecord, RetiredKey, State

CREATE_OPS = ("create_key", "rotate_create")


async def reconcile_journal(
    *,
    exchange: Exchange,
    journal: WriteAheadJournal,
    state: State,
    open_sink: Callable[[str], Sink],
    audit: AuditTrail,
    now: datetime,
) -> tuple[State, list[str]]:
    """Converge state and sinks with what the interrupted run really did.

    Returns the (possibly updated, unsaved) state and one message per reconciled intent.
    The caller saves the state, then clears the journal.
    """
    messages: list[str] = []
    listings: dict[str, list[ApiKey]] = {}
    for entry in journal.pending():
        data = dict(entry.action or {})
        op = data.pop("op", "")
        if op not in CREATE_OPS:
            messages.append(f"interrupted {op or 'call'} on {_where(data)}: re-planned from live")
            continue
        action = Action.from_dict(data)
        if action.email not in listings:
            listings[action.email] = await exchange.list_all_api_keys(action.email)
        live = next((k for k in listings[action.email] if k.api_name == action.api_name), None)
        sink = open_sink(action.sink)
        if live is None:
            sink.discard_pending(action.address)
            messages.append(f"{action.address}: interrupted create did not happen")
        elif _recorded(state, action, live.api_key):
            _finish_promotion(sink, action, live.api_key)
            messages.append(f"{action.address}: interrupted run had recorded {action.api_name}")
        elif action.key_type == "ed25519" and sink.read_pending(action.address) is not None:
            state = _adopt(state, sink, action, op, live, now)
            audit.append(
                "recover_key",
                subaccount=action.subaccount,
                label=action.label,
                api_key=live.api_key,
                detail="adopted after interrupted run",
            )
            messages.append(f"{action.address}: adopted {action.api_name} after interrupted run")
        else:
            await exchange.delete_api_key(action.email, live.api_key)
            sink.discard_pending(action.address)
            audit.append(
                "delete_key",
                subaccount=action.subaccount,
                label=action.label,
                api_key=live.api_key,
                detail="secret lost in interrupted run",
            )
            messages.append(
                f"{action.address}: {action.api_name} was made but its secret was lost in the "
                "interrupted run; deleted it (apply creates a fresh one)"
            )
    return state, messages


def _where(data: dict) -> str:
    return f"{data.get('subaccount', '?')}/{data.get('label') or data.get('api_name') or '?'}"


def _recorded(state: State, action: Action, api_key: str) -> bool:
    record = state.keys.get(action.address)
    return record is not None and record.api_key == api_key


def _finish_promotion(sink: Sink, action: Action, api_key: str) -> None:
    pending = sink.read_pending(action.address)
    if pending is not None and pending.api_key == api_key:
        sink.promote(action.address)


def _adopt(state: State, sink: Sink, action: Action, op: str, live: ApiKey, now: datetime) -> State:
    pending = sink.read_pending(action.address)
    sink.write_pending(replace(pending, api_key=live.api_key))
    state = state.model_copy(deep=True)
    old = state.keys.get(action.address)
    previous = list(old.previous) if old else []
    if op == "rotate_create" and old is not None:
        previous.append(
            RetiredKey(
                api_key=old.api_key,
                api_name=old.api_name,
                generation=old.generation,
                retired_at=now,
                delete_after=now + timedelta(seconds=action.grace_s),
            )
        )
    state.keys[action.address] = KeyRecord(
        subaccount=action.subaccount,
        email=action.email,
        label=action.label,
        api_key=live.api_key,
        api_name=action.api_name,
        generation=action.generation,
        key_type=action.key_type,
        created_at=now,
        permissions=sorted(p.value for p in action.permissions),
        ips=list(action.ips),
        sink=action.sink,
        previous=previous,
    )
    sink.promote(action.address)
    return state
