"""Carrying out the changes that touch no key on the exchange: a `Reconcile` (state and sinks
brought in line with the evidence for one label) and a `Rename` (a label's keys filed under
its new name).

For a reconcile, state first (the key bots read recorded as current, grace periods started,
gone generations forgotten), saved; then the material of keys that are not live is destroyed
in the sink. A rename moves the sink's material first, then the state record. Every step is
idempotent, so an interrupted run simply plans them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from orchestrator.domain.model import LiveKey
from orchestrator.engine import transitions
from orchestrator.engine.changeset import Reconcile, Rename
from orchestrator.engine.ledger import Ledger, safe
from orchestrator.engine.material import SinkOpener
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
