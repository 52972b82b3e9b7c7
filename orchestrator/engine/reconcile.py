"""Carrying out the changes that touch no key on the exchange: a `Reconcile` (state and sinks
brought in line with the evidence for one label), a `Rename` (a label's keys filed under
its new name) and a `MoveMaterial` (a label's keys' material moved to the sink it now names).

For a reconcile, state first (the key bots read recorded as current, grace periods started,
gone generations forgotten), saved; then the material of keys that are not live is destroyed
in the sink. A rename moves the sink's material first, then the state record. Every step is
idempotent, so an interrupted run simply plans them again. A move copies every live
generation into the new sink (the bot-facing one last), reads each copy back, only then
destroys the old sink's material, and records the new sink in state last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from orchestrator.domain.model import LiveKey
from orchestrator.engine import crashpoints, transitions
from orchestrator.engine.changeset import MoveMaterial, Reconcile, Rename
from orchestrator.engine.ledger import ActionFailed, Ledger, safe
from orchestrator.engine.material import SinkOpener
from orchestrator.sinks import KeyMaterial, Sink
from orchestrator.sinks.material import same_material
from orchestrator.store.state import State


class Reconciliation:
    def __init__(
        self, ledger: Ledger, open_sink: SinkOpener, clock: Callable[[], datetime]
    ) -> None:
        self.ledger = ledger
        self.open_sink = open_sink
        self.clock = clock

    async def reconcile(self, action: Reconcile) -> str:
        op = await self.ledger.intent("reconcile", action)
        await self.ledger.commit(recorded(self.ledger.state, action, self.clock()))
        warnings = await asyncio.to_thread(self._destroy, action)
        await self.ledger.outcome(op, result={"destroyed": len(action.destroy)})
        await self.ledger.audit(
            "reconcile", action, api_key=action.adopt_api_key, detail=action.reason
        )
        return "; ".join([action.reason, *warnings])

    async def rename(self, action: Rename) -> str:
        op = await self.ledger.intent("rename", action)
        await asyncio.to_thread(
            self.open_sink(action.sink).rename, action.from_address, action.address
        )
        await self.ledger.commit(
            transitions.label_moved(
                self.ledger.state, action.from_address, action.address, action.label
            )
        )
        await self.ledger.outcome(op, result={"renamed": action.address})
        await self.ledger.audit("rename", action, detail=action.reason)
        return action.reason

    async def move(self, action: MoveMaterial) -> str:
        op = await self.ledger.intent("move_material", action)
        try:
            await asyncio.to_thread(self._copy_then_empty, action)
        except Exception as exc:
            await self.ledger.outcome(op, error=f"move failed: {safe(exc)}")
            raise ActionFailed(
                f"{action.address}: could not move its material to {action.sink} "
                f"({safe(exc)}); {action.from_sink} is emptied only once every copy reads "
                "back, and the next apply goes on from what the two sinks hold"
            ) from None
        await self.ledger.commit(
            transitions.sink_moved(self.ledger.state, action.address, action.sink)
        )
        await self.ledger.outcome(op, result={"moved": len(action.keep)})
        await self.ledger.audit(
            "move_material", action, api_key=action.current, detail=action.reason
        )
        return action.reason

    def _copy_then_empty(self, action: MoveMaterial) -> None:
        """Copy, read back, then destroy the old sink's material (of every generation)."""
        old, new = self.open_sink(action.from_sink), self.open_sink(action.sink)
        new.check(action.address)
        found = _materials(old, action.address)
        copies = [found[api] for api in action.keep if api in found]
        for material in copies:
            _store(new, material, current=material.api_key == action.current)
        _hand_out(new, action)
        crashpoints.reached("after_material_copied")
        _check_copies(new, action, copies)
        for api_key in found:
            old.destroy(action.address, api_key)
        crashpoints.reached("after_old_material_destroyed")

    def _destroy(self, action: Reconcile) -> list[str]:
        warnings = []
        sink = self.open_sink(action.sink)
        for api_key in action.destroy:
            try:
                sink.destroy(action.address, api_key)
            except Exception as exc:  # noqa: BLE001 - the rest is still destroyed; say which
                warnings.append(
                    f"warning: could not destroy a deleted key's material in {action.sink} "
                    f"({safe(exc)}); remove it by hand"
                )
        return warnings


def recorded(state: State, action: Reconcile, now: datetime) -> State:
    """What a reconcile does to state."""
    if action.adopt_api_key is not None:
        state = transitions.key_adopted(
            state,
            address=action.address,
            label=action.label,
            key_type=action.key_type,
            sink=action.sink,
            live=_adopted_key(action),
            created_at=_created_at(action, now),
        )
    if action.retire:
        state = transitions.generations_retired(
            state, action.address, action.retire, now, action.grace_s
        )
    return transitions.generations_forgotten(state, action.address, action.forget)


def _adopted_key(action: Reconcile) -> LiveKey:
    return LiveKey(
        email=action.email,
        api_name=action.adopt_api_name,
        api_key=action.adopt_api_key or "",
        permissions=action.adopt_permissions,
        restricted=action.adopt_ips is not None,
        ips=action.adopt_ips or (),
        created_ms=action.adopt_created_ms,
    )


def _created_at(action: Reconcile, now: datetime) -> datetime:
    if action.adopt_created_ms > 0:
        return datetime.fromtimestamp(action.adopt_created_ms / 1000, tz=UTC)
    return now


def _materials(sink: Sink, address: str) -> dict[str, KeyMaterial]:
    """Every registered key's material the sink holds for `address`, by api key."""
    found = [*sink.read_held(address), sink.read_current(address)]
    return {m.api_key: m for m in found if m is not None and m.api_key}


def _store(sink: Sink, material: KeyMaterial, *, current: bool) -> None:
    """Put `material` in the sink, as its bot-facing key when `current`, else held. What the
    sink already holds is not written again."""
    held = {m.api_key for m in sink.read_held(material.address)}
    bot_facing = sink.read_current(material.address)
    if bot_facing is not None and bot_facing.api_key == material.api_key:
        return
    if material.api_key in held:
        if current:
            sink.make_current(material.address, material.generation)
        return
    sink.write_pending(material)
    sink.promote(material.address, material.generation)


def _hand_out(sink: Sink, action: MoveMaterial) -> None:
    """Make the key bots should read the new sink's bot-facing one (copying an older held
    generation puts that one there for a moment)."""
    bot_facing = sink.read_current(action.address)
    if bot_facing is not None and bot_facing.api_key == action.current:
        return
    held = {m.api_key: m.generation for m in sink.read_held(action.address)}
    if action.current in held:
        sink.make_current(action.address, held[action.current])


def _check_copies(sink: Sink, action: MoveMaterial, copies: list[KeyMaterial]) -> None:
    """Read every copy back from the new sink before the old one is emptied."""
    current = sink.read_current(action.address)
    if current is None or current.api_key != action.current:
        raise ActionFailed(f"{action.sink} does not hand bots the key it should after the move")
    stored = {m.api_key: m for m in [*sink.read_held(action.address), current]}
    for material in copies:
        copy = stored.get(material.api_key or "")
        if copy is None or not same_material(copy, material):
            raise ActionFailed(
                f"the copy of generation {material.generation} in {action.sink} does not read "
                "back as written"
            )
