"""Deleting keys: a planned generation whose time is up, or a key the plan prunes.

The key is deleted on the exchange first (an ambiguous outcome is read back, never guessed),
then forgotten in state, then its material destroyed in the sinks, so that no secret of a
deleted key is kept and no live key loses its material.
"""

from __future__ import annotations

import asyncio

from orchestrator.engine import crashpoints, transitions
from orchestrator.engine.changeset import DeleteKey
from orchestrator.engine.ledger import Ledger, mask
from orchestrator.engine.material import SinkOpener
from orchestrator.engine.recovery import drop_material
from orchestrator.exchange.interface import Exchange


class Deleter:
    def __init__(self, exchange: Exchange, ledger: Ledger, open_sink: SinkOpener) -> None:
        self.exchange = exchange
        self.ledger = ledger
        self.open_sink = open_sink

    async def delete_key(self, action: DeleteKey) -> str:
        warnings = await self.delete(action)
        message = f"deleted {action.api_name or ''} ({mask(action.api_key)}): {action.reason}"
        return "; ".join([message, *warnings])

    async def delete(self, action: DeleteKey) -> list[str]:
        """Delete the key, forget it, drop its material; returns warnings about the sinks."""
        op = await self.ledger.intent("delete_key", action)
        crashpoints.reached("before_delete")
        await self.ledger.confirmed_write(
            op,
            "delete_key",
            action,
            "delete",
            write=lambda: self.exchange.delete_api_key(action.email, action.api_key),
            took_effect=lambda: self._gone(action.email, action.api_key),
        )
        crashpoints.reached("after_delete")
        warnings = await self.forget(action.api_key)
        await self.ledger.outcome(op, result={"deleted": mask(action.api_key)})
        await self.ledger.audit("delete_key", action, api_key=action.api_key, detail=action.reason)
        return warnings

    async def forget(self, api_key: str) -> list[str]:
        """Destroy a deleted key's material in the sinks, then drop it from state. In that
        order, a crash in between leaves state naming the key, so recovery still knows where
        its material was. A sink that cannot be cleaned is a warning: the key is gone."""
        _, slots = transitions.key_forgotten(self.ledger.state, api_key)
        warnings = await asyncio.to_thread(drop_material, self.open_sink, slots, api_key)
        await self.ledger.commit(transitions.key_forgotten(self.ledger.state, api_key)[0])
        return warnings

    async def _gone(self, email: str, api_key: str) -> bool:
        page = await self.exchange.list_api_keys(email, api_key=api_key)
        return not page.rows
