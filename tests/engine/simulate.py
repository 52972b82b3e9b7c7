"""A miniature executor over the diff's own values, for property tests of the diff.

It plays a changeset against a Live the way the exchange would, and records each change in
state with the same transitions apply uses, so that
`diff(desired, *simulate(diff(desired, live, state)))` can be checked to be empty.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime

from orchestrator.domain.model import Live, LiveKey, SubAccount
from orchestrator.engine import transitions
from orchestrator.engine.changeset import (
    Action,
    Changeset,
    CreateKey,
    CreateSubaccount,
    DeleteKey,
    Rotate,
    UpdateIps,
    UpdatePermissions,
)
from orchestrator.store.state import State

_fresh = itertools.count(1)


def simulate(changeset: Changeset, live: Live, state: State | None, now: datetime):
    keys = {email: list(ks) for email, ks in live.keys.items()}
    subs = list(live.subaccounts)
    state = state.model_copy(deep=True) if state else State(lineage="sim", plan="sim")
    for action in changeset.actions:
        if isinstance(action, CreateSubaccount):
            email = f"{action.virtual}_virtual@sim{next(_fresh)}noemail.com"
            subs.append(SubAccount(email=email))
            keys[email] = []
            state = transitions.subaccount_created(state, action.subaccount, email)
            continue
        email = getattr(action, "email", None) or state.subaccounts[action.subaccount].email
        state = _apply(action, email, keys.setdefault(email, []), state, now)
    state = state.model_copy(update={"serial": state.serial + 1})
    frozen = {email: tuple(ks) for email, ks in keys.items()}
    return Live(subaccounts=tuple(subs), keys=frozen), state


def _apply(action: Action, email: str, keys: list[LiveKey], state: State, now: datetime) -> State:
    index = {k.api_key: i for i, k in enumerate(keys)}
    match action:
        case CreateKey():
            keys.append(_new_key(action, email))
            return transitions.key_made(state, replace(action, email=email), keys[-1].api_key, now)
        case UpdatePermissions():
            i = index[action.api_key]
            state = _adopt(action, keys[i], state, now)
            keys[i] = replace(keys[i], permissions=action.permissions)
            perms = sorted(p.value for p in action.permissions)
            return transitions.permissions_set(state, action.address, perms)
        case UpdateIps():
            i = index[action.api_key]
            state = _adopt(action, keys[i], state, now)
            if action.unrestrict:
                keys[i] = replace(keys[i], restricted=False, ips=())
            else:
                ips = (set(keys[i].ips) | set(action.ips_add)) - set(action.ips_remove)
                keys[i] = replace(keys[i], restricted=True, ips=tuple(sorted(ips)))
            recorded = list(keys[i].ips) if keys[i].restricted else []
            return transitions.ips_set(state, action.address, recorded)
        case Rotate():
            keys.append(_new_key(action, email))
            state = transitions.key_made(state, action, keys[-1].api_key, now)
            if action.grace_s == 0:
                del keys[index[action.api_key]]
                state, _ = transitions.key_forgotten(state, action.api_key)
            return state
        case DeleteKey():
            del keys[index[action.api_key]]
            return transitions.key_forgotten(state, action.api_key)[0]
        case _:
            raise AssertionError(f"unexpected {action}")


def _adopt(action: UpdatePermissions | UpdateIps, key: LiveKey, state: State, now) -> State:
    """A key recognised by its apiName but missing from state is recorded when touched."""
    return transitions.key_adopted(
        state,
        address=action.address,
        label=action.label,
        key_type=action.key_type,
        sink=action.sink,
        live=key,
        created_at=now,
    )


def _new_key(action: CreateKey | Rotate, email: str) -> LiveKey:
    return LiveKey(
        email=email,
        api_name=action.api_name,
        api_key=f"SIMKEY{next(_fresh):06d}",
        permissions=action.permissions,
        restricted=bool(action.ips),
        ips=action.ips,
    )
