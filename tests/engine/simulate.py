"""A miniature executor over the diff's own values, for property tests of the diff.

It applies a changeset to a Live and a State the way apply does against the exchange, so
that `diff(desired, *simulate(diff(desired, live, state)))` can be checked to be empty.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta

from orchestrator.domain.model import Live, LiveKey
from orchestrator.engine.changeset import Action, ActionKind, Changeset
from orchestrator.exchange.models import SubAccount
from orchestrator.store.state import KeyRecord, RetiredKey, State, SubaccountRecord

_fresh = itertools.count(1)


def simulate(changeset: Changeset, live: Live, state: State | None, now: datetime):
    keys = {email: list(ks) for email, ks in live.keys.items()}
    subs = list(live.subaccounts)
    state = state.model_copy(deep=True) if state else State(lineage="sim", plan="sim")
    for action in changeset.actions:
        if action.kind == ActionKind.CREATE_SUBACCOUNT:
            email = f"{action.virtual}_virtual@sim{next(_fresh)}noemail.com"
            subs.append(SubAccount(email=email))
            keys[email] = []
            state.subaccounts[action.subaccount] = SubaccountRecord(
                name=action.subaccount, email=email, virtual=True
            )
            continue
        email = action.email or state.subaccounts[action.subaccount].email
        _apply(action, email, keys.setdefault(email, []), state, now)
    state.serial += 1
    frozen = {email: tuple(ks) for email, ks in keys.items()}
    return Live(subaccounts=tuple(subs), keys=frozen), state


def _apply(action: Action, email: str, keys: list[LiveKey], state: State, now: datetime) -> None:
    index = {k.api_key: i for i, k in enumerate(keys)}
    if action.kind in (ActionKind.UPDATE_PERMISSIONS, ActionKind.UPDATE_IPS):
        _adopt(action, email, keys[index[action.api_key]], state, now)
    if action.kind == ActionKind.CREATE_KEY:
        keys.append(_new_key(action, email))
        state.keys[action.address] = _record(action, email, keys[-1], now, [])
    elif action.kind == ActionKind.UPDATE_PERMISSIONS:
        i = index[action.api_key]
        keys[i] = replace(keys[i], permissions=action.permissions)
        state.keys[action.address].permissions = sorted(p.value for p in action.permissions)
    elif action.kind == ActionKind.UPDATE_IPS:
        i = index[action.api_key]
        if action.unrestrict:
            keys[i] = replace(keys[i], restricted=False, ips=())
        else:
            ips = (set(keys[i].ips) | set(action.ips_add)) - set(action.ips_remove)
            keys[i] = replace(keys[i], restricted=True, ips=tuple(sorted(ips)))
        state.keys[action.address].ips = list(keys[i].ips) if keys[i].restricted else []
    elif action.kind == ActionKind.ROTATE:
        old = keys[index[action.api_key]]
        keys.append(_new_key(action, email))
        previous = state.keys[action.address].previous if action.address in state.keys else []
        if action.grace_s == 0:
            del keys[index[action.api_key]]
        else:
            previous = previous + [_retired(old, now, action.grace_s)]
        state.keys[action.address] = _record(action, email, keys[-1], now, previous)
    elif action.kind == ActionKind.DELETE_KEY:
        del keys[index[action.api_key]]
        for record in state.keys.values():
            record.previous = [p for p in record.previous if p.api_key != action.api_key]


def _adopt(action: Action, email: str, key: LiveKey, state: State, now: datetime) -> None:
    """A key recognised by its apiName but missing from state is recorded when touched."""
    record = state.keys.get(action.address)
    if record is None or record.api_key != key.api_key:
        from orchestrator.domain.naming import parse_api_name

        generation = parse_api_name(key.api_name)[1]
        adopted = replace(
            action,
            generation=generation,
            permissions=key.permissions,
            ips=key.ips,
            key_type=action.key_type or "unknown",
            sink=action.sink or "",
        )
        state.keys[action.address] = _record(adopted, email, key, now, [])


def _new_key(action: Action, email: str) -> LiveKey:
    return LiveKey(
        email=email,
        api_name=action.api_name,
        api_key=f"SIMKEY{next(_fresh):06d}",
        permissions=action.permissions,
        restricted=bool(action.ips),
        ips=action.ips,
    )


def _record(action: Action, email: str, key: LiveKey, now: datetime, previous) -> KeyRecord:
    return KeyRecord(
        subaccount=action.subaccount,
        email=email,
        label=action.label,
        api_key=key.api_key,
        api_name=key.api_name,
        generation=action.generation,
        key_type=action.key_type,
        created_at=now,
        permissions=sorted(p.value for p in action.permissions),
        ips=list(action.ips),
        sink=action.sink,
        previous=previous,
    )


def _retired(old: LiveKey, now: datetime, grace_s: float) -> RetiredKey:
    from orchestrator.domain.naming import parse_api_name

    parsed = parse_api_name(old.api_name)
    return RetiredKey(
        api_key=old.api_key,
        api_name=old.api_name,
        generation=parsed[1] if parsed else 0,
        retired_at=now,
        delete_after=now + timedelta(seconds=grace_s),
    )
