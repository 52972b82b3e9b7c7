"""What a finished change does to state, written once.

Pure functions from a state to the next one. apply, journal recovery, `import`/`state
rebuild` and the diff's property tests all record what happened through these, so the state
they leave is the same whichever path made the change. A returned state shares unchanged
records with the one passed in; records are never changed in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from orchestrator.domain.model import LiveKey
from orchestrator.domain.naming import parse_api_name
from orchestrator.engine.changeset import CreateKey, Rotate
from orchestrator.store.state import (
    KeyRecord,
    RetiredKey,
    State,
    SubaccountRecord,
    SwitchRecord,
)

#: (sink spec, address) of a slot that may hold a forgotten key's material.
SinkSlot = tuple[str, str]


def subaccount_created(state: State, name: str, email: str) -> State:
    record = SubaccountRecord(name=name, email=email, virtual=True)
    return state.model_copy(update={"subaccounts": {**state.subaccounts, name: record}})


def key_made(state: State, change: CreateKey | Rotate, api_key: str, now: datetime) -> State:
    """A create or rotation made `api_key`. The generations still in grace stay recorded; a
    rotation adds the key it replaced to them, to be deleted once its grace has passed."""
    old = state.keys.get(change.address)
    previous = list(old.previous) if old else []
    if isinstance(change, Rotate) and change.api_key != api_key:
        previous.append(_retired(change.api_key, change.replaced_name, now, change.grace_s))
    if isinstance(change, CreateKey):
        known = {p.api_key for p in previous}
        previous += [
            _retired(key, name, now, change.grace_s)
            for key, name in change.retire
            if key not in known
        ]
    record = KeyRecord(
        subaccount=change.subaccount,
        email=change.email or _email_of(state, change.subaccount),
        label=change.label,
        api_key=api_key,
        api_name=change.api_name,
        generation=change.generation,
        key_type=change.key_type,
        created_at=now,
        permissions=sorted(p.value for p in change.permissions),
        ips=list(change.ips),
        sink=change.sink,
        previous=[p for p in previous if p.api_key != api_key],
    )
    return with_record(state, change.address, record)


def key_adopted(
    state: State,
    *,
    address: str,
    label: str,
    key_type: str,
    sink: str,
    live: LiveKey,
    created_at: datetime,
) -> State:
    """A live key recognised by its apiName (or named by `import`) becomes the label's
    recorded key; generations the label kept in grace stay recorded."""
    old = state.keys.get(address)
    if old is not None and old.api_key == live.api_key:
        return state
    parsed = parse_api_name(live.api_name)
    record = KeyRecord(
        subaccount=address.partition("/")[0],
        email=live.email,
        label=label,
        api_key=live.api_key,
        api_name=live.api_name,
        generation=parsed[1] if parsed else 1,  # a key named elsewhere counts as the first
        key_type=key_type,
        created_at=created_at,
        permissions=sorted(p.value for p in live.permissions),
        ips=list(live.ips) if live.restricted else [],
        sink=sink,
        previous=[p for p in (old.previous if old else []) if p.api_key != live.api_key],
    )
    return with_record(state, address, record)


def permissions_set(state: State, address: str, permissions: list[str]) -> State:
    record = state.keys[address]
    return with_record(state, address, record.model_copy(update={"permissions": permissions}))


def ips_set(state: State, address: str, ips: list[str]) -> State:
    record = state.keys[address]
    return with_record(state, address, record.model_copy(update={"ips": ips}))


def key_forgotten(state: State, api_key: str) -> tuple[State, list[SinkSlot]]:
    """A deleted key leaves state: as a label's current key or as a generation in grace.
    Returns the new state and the sink slots that may still hold its material."""
    keys = dict(state.keys)
    slots: list[SinkSlot] = []
    for address, record in state.keys.items():
        if record.api_key == api_key:
            del keys[address]
            slots.append((record.sink, address))
        elif any(p.api_key == api_key for p in record.previous):
            kept = [p for p in record.previous if p.api_key != api_key]
            keys[address] = record.model_copy(update={"previous": kept})
            slots.append((record.sink, address))
    if not slots:
        return state, []
    return state.model_copy(update={"keys": keys}), slots


def record_restored(state: State, address: str, before: KeyRecord | None) -> State:
    """Undo a rotation: the label's record as it was before it (none, if there was none)."""
    keys = dict(state.keys)
    if before is None:
        keys.pop(address, None)
    else:
        keys[address] = before
    return state.model_copy(update={"keys": keys})


def label_moved(state: State, from_address: str, to_address: str, label: str) -> State:
    """A renamed label's record is filed under its new address (apiNames are unchanged)."""
    record = state.keys.get(from_address)
    if record is None or to_address in state.keys:
        return state
    keys = {a: r for a, r in state.keys.items() if a != from_address}
    keys[to_address] = record.model_copy(update={"label": label})
    return state.model_copy(update={"keys": keys})


def sink_moved(state: State, address: str, sink: str) -> State:
    """The label's material now lives in `sink` (its `secrets:` changed)."""
    record = state.keys.get(address)
    if record is None or record.sink == sink:
        return state
    return with_record(state, address, record.model_copy(update={"sink": sink}))


def with_record(state: State, address: str, record: KeyRecord) -> State:
    return state.model_copy(update={"keys": {**state.keys, address: record}})


def generations_retired(
    state: State, address: str, retire: Iterable[tuple[str, str]], now: datetime, grace_s: float
) -> State:
    """Live generations of the label, other than its current key, start a grace period."""
    record = state.keys[address]
    known = {p.api_key for p in record.previous} | {record.api_key}
    added = [_retired(key, name, now, grace_s) for key, name in retire if key not in known]
    if not added:
        return state
    return with_record(
        state, address, record.model_copy(update={"previous": [*record.previous, *added]})
    )


def switch_recorded(
    state: State,
    address: str,
    switched: SwitchRecord,
    grace_s: float,
) -> State:
    """The reload/check steps ran for the label's current key. On success the grace of its
    older generations starts now: a deadline that is later already stays, an earlier one
    moves to now + grace. A result for a key that is no longer current changes nothing."""
    record = state.keys.get(address)
    if record is None or record.api_key != switched.api_key:
        return state
    previous = record.previous
    if switched.ok:
        start = switched.at + timedelta(seconds=grace_s)
        previous = [
            p if p.delete_after >= start else p.model_copy(update={"delete_after": start})
            for p in previous
        ]
    return with_record(
        state, address, record.model_copy(update={"switched": switched, "previous": previous})
    )


def generations_forgotten(state: State, address: str, api_keys: Iterable[str]) -> State:
    """Generations in grace that are no longer live leave the label's record."""
    record = state.keys.get(address)
    gone = set(api_keys)
    if record is None or not any(p.api_key in gone for p in record.previous):
        return state
    kept = [p for p in record.previous if p.api_key not in gone]
    return with_record(state, address, record.model_copy(update={"previous": kept}))


def _retired(api_key: str, name: str, now: datetime, grace_s: float) -> RetiredKey:
    parsed = parse_api_name(name)
    return RetiredKey(
        api_key=api_key,
        api_name=name,
        generation=parsed[1] if parsed else 1,  # a key named elsewhere counts as the first
        retired_at=now,
        delete_after=now + timedelta(seconds=grace_s),
    )


def _email_of(state: State, subaccount: str) -> str:
    record = state.subaccounts.get(subaccount)
    if record is None:
        raise ValueError(f"sub-account {subaccount} has no recorded email")
    return record.email
