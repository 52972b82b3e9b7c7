"""Adopting live keys into state: `import` and `state rebuild`.

State is a cache of what the orchestrator made; the apiName (`orc-<label>-g<N>`) carries
enough to rebuild it when it is lost, and `import` binds a key made elsewhere to a label.
"""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.domain.model import Desired, DesiredKey, Live, LiveKey
from orchestrator.engine import transitions
from orchestrator.engine.diff import current_keys, resolve_email
from orchestrator.store.state import State, SubaccountRecord


class AdoptError(Exception):
    """The key to import cannot be bound as asked."""


def rebuild(desired: Desired, live: Live, state: State) -> tuple[State, list[str]]:
    """State with a record for every planned key whose apiName is live (all of them when
    state is lost); records of keys no longer live are dropped."""
    state = state.model_copy(deep=True)
    bound = current_keys(desired, live, None)
    messages = []
    for key in desired.keys():
        current = bound.get(key.address)
        record = state.keys.get(key.address)
        if current is None:
            if record is not None:
                del state.keys[key.address]
                messages.append(f"{key.address}: dropped, its key is not live")
            continue
        if record is None or record.api_key != current.api_key:
            state = _adopt(state, key, current)
            messages.append(f"{key.address}: recorded {current.api_name}")
    _record_subaccounts(desired, live, state)
    return state, messages


def import_key(
    desired: Desired, live: Live, state: State, *, subaccount: str, api_key: str, label: str
) -> State:
    key = _planned(desired, subaccount, label)
    sub = next(s for s in desired.subaccounts if s.name == subaccount)
    email = resolve_email(sub, live, state)
    found = next((k for k in live.keys.get(email or "", ()) if k.api_key == api_key), None)
    if found is None:
        raise AdoptError(f"no live key {api_key[:4]}… in sub-account {subaccount}")
    owner = next((a for a, r in state.keys.items() if r.api_key == api_key), None)
    if owner and owner != key.address:
        raise AdoptError(f"that key is already managed as {owner}")
    state = _adopt(state.model_copy(deep=True), key, found)
    _record_subaccounts(desired, live, state)
    return state


def _planned(desired: Desired, subaccount: str, label: str) -> DesiredKey:
    for key in desired.keys():
        if key.subaccount == subaccount and key.label == label:
            return key
    labels = sorted(k.address for k in desired.keys())
    raise AdoptError(
        f"{subaccount}/{label} is not in the plan; add it first (planned: {', '.join(labels)})"
    )


def _adopt(state: State, key: DesiredKey, live: LiveKey) -> State:
    created = (
        datetime.fromtimestamp(live.created_ms / 1000, tz=UTC)
        if live.created_ms
        else datetime.now(UTC)
    )
    return transitions.key_adopted(
        state,
        address=key.address,
        label=key.label,
        key_type=key.key_type,
        sink=key.sink,
        live=live,
        created_at=created,
    )


def _record_subaccounts(desired: Desired, live: Live, state: State) -> None:
    for sub in desired.subaccounts:
        email = resolve_email(sub, live, state)
        if email and sub.name not in state.subaccounts:
            state.subaccounts[sub.name] = SubaccountRecord(
                name=sub.name, email=email, virtual=bool(sub.virtual)
            )
