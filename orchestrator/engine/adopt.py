"""Adopting live keys into state: `import` and `state rebuild` (`import --all`).

State is a cache of what the orchestrator made; the apiName (`orc-<project>.<label>-g<N>`)
and the sinks carry enough to rebuild it when it is lost, and `import` binds a key made
elsewhere to a label. Both decide with the diff's own rules, so the state they write is the
one the next apply would converge to: the key bots read is current, other live generations
whose material is kept are in grace (restarting now where state had no deadline).
"""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.domain.model import Desired, DesiredKey, Live, LiveKey
from orchestrator.engine import transitions
from orchestrator.engine.changeset import Reconcile
from orchestrator.engine.diff import EXTERNAL_SINK, current_keys, diff, resolve_email
from orchestrator.engine.reconcile import recorded
from orchestrator.store.state import State, SubaccountRecord


class AdoptError(Exception):
    """The key to import cannot be bound as asked."""


def rebuild(desired: Desired, live: Live, state: State, now: datetime) -> tuple[State, list[str]]:
    """State with a record for every planned key that has a live current key, grace periods
    for the other live generations, and no record of keys that are gone."""
    state = _record_subaccounts(desired, live, state.model_copy(deep=True))
    bound = current_keys(desired, live, state)
    messages = []
    for key in desired.keys():
        current = bound.get(key.address)
        record = state.keys.get(key.address)
        if current is None:
            if record is not None:
                state = transitions.record_restored(state, key.address, None)
                messages.append(f"{key.address}: dropped, its key is not live")
            continue
        if record is None or record.api_key != current.api_key:
            state = _adopt(state, key, current)
            messages.append(f"{key.address}: recorded {current.api_name}")
    for action in diff(desired, live, state, now).actions:
        if isinstance(action, Reconcile):
            state = recorded(state, action, now)
            messages += _grace_messages(action)
    return state, messages


def import_key(
    desired: Desired, live: Live, state: State, *, subaccount: str, api_key: str, label: str
) -> State:
    """Bind a live key made elsewhere to a planned label. Its material stays where it is
    (the tool never saw its secret): the record says so, and the key counts as the label's
    current key until a rotation replaces it."""
    key = _planned(desired, subaccount, label)
    sub = next(s for s in desired.subaccounts if s.name == subaccount)
    email = resolve_email(sub, live, state)
    found = next((k for k in live.keys.get(email or "", ()) if k.api_key == api_key), None)
    if found is None:
        raise AdoptError(f"no live key {api_key[:4]}… in sub-account {subaccount}")
    owner = next((a for a, r in state.keys.items() if r.api_key == api_key), None)
    if owner and owner != key.address:
        raise AdoptError(f"that key is already managed as {owner}")
    state = _record_subaccounts(desired, live, state.model_copy(deep=True))
    return _adopt(state, key, found, sink=EXTERNAL_SINK)


def _planned(desired: Desired, subaccount: str, label: str) -> DesiredKey:
    for key in desired.keys():
        if key.subaccount == subaccount and key.label == label:
            return key
    labels = sorted(k.address for k in desired.keys())
    raise AdoptError(
        f"{subaccount}/{label} is not in the plan; add it first (planned: {', '.join(labels)})"
    )


def _adopt(state: State, key: DesiredKey, live: LiveKey, *, sink: str | None = None) -> State:
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
        sink=sink or key.sink,
        live=live,
        created_at=created,
    )


def _grace_messages(action: Reconcile) -> list[str]:
    return [f"{action.address}: {name} kept in grace" for _, name in action.retire]


def _record_subaccounts(desired: Desired, live: Live, state: State) -> State:
    subaccounts = dict(state.subaccounts)
    for sub in desired.subaccounts:
        email = resolve_email(sub, live, state)
        if email and sub.name not in subaccounts:
            subaccounts[sub.name] = SubaccountRecord(
                name=sub.name, email=email, virtual=bool(sub.virtual)
            )
    return state.model_copy(update={"subaccounts": subaccounts})
