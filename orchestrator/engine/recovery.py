"""Reconciling the write-ahead journal after a crash, before any plan or apply.

An intent without an outcome means the process died around a mutating call (or while
cleaning up after one). Updates need no work here: the diff finds them again from live
state. Creates and deletes do, because state and the sinks must agree with what is live.

A create (`create_key`, `rotate_create`) stays open in the journal from before its key
material exists until the key is recorded and promoted, so for each open create we ask the
exchange whether a key with the intended apiName exists:

- not live: nothing happened; pending material of that generation is discarded;
- live and recorded in state: the run died between recording and promoting; promote;
- live, not recorded, its material in the sink (pending with that api key, an ed25519
  private key still waiting for it, or already current): adopted into state and promoted
  (for a rotation, the old key becomes previous with its grace);
- live with no material anywhere (an HMAC secret lost with the response, or a rotation that
  was being rolled back): deleted again; the next apply creates a fresh one.

An open `rotate_rollback` (a rotation whose new key failed verification) is finished: the
old record goes back into state, the new key's material is dropped and the key deleted. It
is opened before the rotation's create is closed, so both may be open: the create it undoes
is then left to it, never adopted.

For an open delete (`delete_key`, `delete_orphan`, `lockdown_delete`): a key that is gone
is dropped from state and its material from the sinks; an orphan that is still live (made
by us, recorded nowhere) is deleted; anything else is re-planned from live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeGuard

from orchestrator.engine import transitions
from orchestrator.engine.changeset import CreateKey, Rotate, action_from_dict
from orchestrator.exchange.interface import Exchange
from orchestrator.exchange.models import ApiKey
from orchestrator.sinks import KeyMaterial, Sink
from orchestrator.store.audit import mask_key
from orchestrator.store.backend import AuditTrail, WriteAheadJournal
from orchestrator.store.journal import JournalEntry
from orchestrator.store.state import KeyRecord, State

KeyChange = CreateKey | Rotate
_UNKNOWN = object()  # a journal entry from before creates recorded the label's prior record

CREATE_OPS = ("create_key", "rotate_create")
DELETE_OPS = ("delete_key", "delete_orphan", "lockdown_delete")


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
    The caller saves the state, then clears the journal. Every step is idempotent, so a
    crash during recovery is recovered by running it again.
    """
    state = state.model_copy(deep=True)
    rec = _Reconciler(exchange, state, open_sink, audit, now)
    pending = journal.pending()
    undone = _undone_by_rollbacks(pending)
    for entry in pending:
        data = dict(entry.action or {})
        op = data.pop("op", "")
        if op in CREATE_OPS and entry.op_id in undone:
            continue  # its rollback, open too, deletes the key: it must not be adopted first
        if op in CREATE_OPS:
            before = data.pop("before", _UNKNOWN)
            rec.messages.append(await rec.create(_key_change(data), before))
        elif op == "rotate_rollback":
            before = data.pop("before", None)
            data.pop("undoes", None)
            rec.messages.append(await rec.roll_back(_rotation(data), before))
        elif op in DELETE_OPS and data.get("email") and data.get("api_key"):
            rec.messages.append(await rec.delete(op, data))
        else:
            rec.messages.append(
                f"interrupted {op or 'call'} on {_where(data)}: re-planned from live"
            )
    return rec.state, rec.messages


def _undone_by_rollbacks(pending: list[JournalEntry]) -> set[str]:
    """The ops of the rotations that an open `rotate_rollback` was undoing."""
    return {
        str(entry.action["undoes"])
        for entry in pending
        if entry.action
        and entry.action.get("op") == "rotate_rollback"
        and entry.action.get("undoes")
    }


def _key_change(data: dict[str, Any]) -> KeyChange:
    change = action_from_dict(data)
    if not isinstance(change, CreateKey | Rotate) or change.email is None:
        raise ValueError(f"journal entry is not a create with a sub-account: {change.kind.value}")
    return change


def _rotation(data: dict[str, Any]) -> Rotate:
    change = action_from_dict(data)
    if not isinstance(change, Rotate):
        raise ValueError(f"journal entry is not a rotation: {change.kind.value}")
    return change


class _Reconciler:
    def __init__(
        self,
        exchange: Exchange,
        state: State,
        open_sink: Callable[[str], Sink],
        audit: AuditTrail,
        now: datetime,
    ) -> None:
        self.exchange = exchange
        self.state: State = state
        self.open_sink = open_sink
        self.audit = audit
        self.now = now
        self.messages: list[str] = []
        self._listings: dict[str, list[ApiKey]] = {}

    async def live_keys(self, email: str) -> list[ApiKey]:
        if email not in self._listings:
            self._listings[email] = await self.exchange.list_all_api_keys(email)
        return self._listings[email]

    async def delete_live(self, email: str, api_key: str) -> None:
        await self.exchange.delete_api_key(email, api_key)
        self._listings[email] = [k for k in self._listings.get(email, []) if k.api_key != api_key]

    async def create(self, action: KeyChange, before: object = _UNKNOWN) -> str:
        email = action.email or ""
        keys = await self.live_keys(email)
        live = next((k for k in keys if k.api_name == action.api_name), None)
        sink = self.open_sink(action.sink)
        pending = sink.read_pending(action.address)
        if live is None:
            if pending is not None and pending.generation == action.generation:
                sink.discard_pending(action.address)
            return f"{action.address}: interrupted create did not happen"
        current = sink.read_current(action.address)
        if isinstance(action, Rotate) and _unverified(action, before, current, live.api_key):
            old = before if isinstance(before, dict) else None
            await self.roll_back(replace(action, api_key=live.api_key), old)
            return (
                f"{action.address}: the interrupted rotation to {action.api_name} was never "
                "verified; rolled it back (the next rotate tries again)"
            )
        if _recorded(self.state, action, live.api_key):
            if pending is not None and pending.api_key == live.api_key:
                sink.promote(action.address)
            self._audit("recover_key", action, live.api_key, "finished after interrupted run")
            return f"{action.address}: interrupted run had recorded {action.api_name}"
        if _holds(pending, action, live.api_key):
            if pending.api_key is None:
                sink.write_pending(replace(pending, api_key=live.api_key))
            self._record(action, live)
            sink.promote(action.address)
        elif _holds(sink.read_current(action.address), action, live.api_key, registered=True):
            self._record(action, live)
        else:
            await self.delete_live(email, live.api_key)
            if pending is not None and pending.generation == action.generation:
                sink.discard_pending(action.address)
            self._audit("delete_key", action, live.api_key, "secret lost in interrupted run")
            return (
                f"{action.address}: {action.api_name} was made but its key material was lost "
                "in the interrupted run; deleted it (apply creates a fresh one)"
            )
        self._audit("recover_key", action, live.api_key, "adopted after interrupted run")
        return f"{action.address}: adopted {action.api_name} after interrupted run"

    async def roll_back(self, action: Rotate, before: dict | None) -> str:
        """Finish undoing a rotation whose new key (`action.api_key`) failed verification:
        the old record back in state, the new key's pending material dropped, the key deleted."""
        new_key = action.api_key
        if _recorded(self.state, action, new_key):
            old = KeyRecord.model_validate(before) if before is not None else None
            self.state = transitions.record_restored(self.state, action.address, old)
        sink = self.open_sink(action.sink)
        if _holds(sink.read_pending(action.address), action, new_key):
            sink.discard_pending(action.address)
        if any(k.api_key == new_key for k in await self.live_keys(action.email)):
            await self.delete_live(action.email, new_key)
            self._audit("delete_key", action, new_key, "rotation rolled back")
        return f"{action.address}: finished rolling back the rotation to {action.api_name}"

    async def delete(self, op: str, data: dict) -> str:
        email, api_key = data["email"], data["api_key"]
        where = f"{_where(data)} ({mask_key(api_key)})"
        live = any(k.api_key == api_key for k in await self.live_keys(email))
        if not live:
            self.state, slots = transitions.key_forgotten(self.state, api_key)
            warnings = drop_material(self.open_sink, slots, api_key)
            return "; ".join([f"{where}: interrupted delete had happened", *warnings])
        if op == "delete_orphan" and not _known(self.state, api_key):
            await self.delete_live(email, api_key)
            self.audit.append(
                "delete_key",
                subaccount=data.get("subaccount"),
                label=data.get("label") or data.get("api_name"),
                api_key=api_key,
                detail="orphan left by interrupted run",
            )
            return f"{where}: deleted the orphan key an interrupted run left"
        return f"interrupted {op} on {where}: key still live, re-planned from live"

    def _record(self, action: KeyChange, live: ApiKey) -> None:
        self.state = transitions.key_made(self.state, action, live.api_key, self.now)

    def _audit(self, name: str, action: KeyChange, api_key: str, detail: str) -> None:
        self.audit.append(
            name, subaccount=action.subaccount, label=action.label, api_key=api_key, detail=detail
        )


def drop_material(
    open_sink: Callable[[str], Sink], slots: list[transitions.SinkSlot], api_key: str
) -> list[str]:
    """Destroy a deleted key's material in the sinks that may hold it (never another
    generation's). Returns a warning per sink that could not be cleaned."""
    warnings = []
    for spec, address in slots:
        try:
            open_sink(spec).destroy(address, api_key)
        except Exception as exc:  # noqa: BLE001 - the key is deleted either way; say so
            warnings.append(
                f"warning: could not remove the deleted key's material for {address} from "
                f"{spec or 'its sink'} ({type(exc).__name__}: {exc}); remove it by hand"
            )
    return warnings


def _unverified(action: Rotate, before: object, current: KeyMaterial | None, api_key: str) -> bool:
    """A rotation with `verify: true` cut off before its new key was promoted: nobody checked
    that the new key works, so it is rolled back rather than adopted. Only journals that
    recorded the label's record from before the rotation can be rolled back exactly."""
    return action.verify and before is not _UNKNOWN and not _is_key(current, api_key)


def _is_key(material: KeyMaterial | None, api_key: str) -> bool:
    return material is not None and material.api_key == api_key


def _holds(
    material: KeyMaterial | None, action: KeyChange, api_key: str, *, registered: bool = False
) -> TypeGuard[KeyMaterial]:
    """Whether `material` is this create's: its api key, or (ed25519, before the api key was
    written back) a private key of this generation waiting for it."""
    if material is None:
        return False
    if material.api_key == api_key:
        return True
    return (
        not registered
        and material.api_key is None
        and material.key_type == "ed25519"
        and action.key_type == "ed25519"
        and material.generation == action.generation
    )


def _where(data: dict) -> str:
    return f"{data.get('subaccount', '?')}/{data.get('label') or data.get('api_name') or '?'}"


def _recorded(state: State, action: KeyChange, api_key: str) -> bool:
    record = state.keys.get(action.address)
    return record is not None and record.api_key == api_key


def _known(state: State, api_key: str) -> bool:
    return any(
        r.api_key == api_key or any(p.api_key == api_key for p in r.previous)
        for r in state.keys.values()
    )
