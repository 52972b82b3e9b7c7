"""The apply executor: runs a changeset against the exchange, journaled, audited, crash-safe.

Actions run phase by phase (sub-accounts, then updates and prune deletes, creates,
rotations, and deletes of superseded keys); actions within a phase run concurrently and the
client paces each endpoint. Each kind of action has its executor (keymaking, updates,
deletes); the ledger keeps journal, audit log and state in step with what they do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.engine import crashpoints, transitions
from orchestrator.engine.changeset import (
    Action,
    Changeset,
    CreateKey,
    CreateSubaccount,
    DeleteKey,
    MoveMaterial,
    Reconcile,
    Reload,
    Rename,
    Rotate,
    UpdateIps,
    UpdatePermissions,
)
from orchestrator.engine.deletes import Deleter
from orchestrator.engine.diff import VIRTUAL_EMAIL_MARKER, phase
from orchestrator.engine.keymaking import KeyMaker
from orchestrator.engine.ledger import ActionFailed, ActionResult, Ledger, safe
from orchestrator.engine.material import SinkIO, SinkOpener
from orchestrator.engine.reconcile import Reconciliation
from orchestrator.engine.switching import Switcher, SwitchListener
from orchestrator.engine.updates import Updater
from orchestrator.exchange.errors import AmbiguousOutcome, ExchangeError
from orchestrator.exchange.interface import Exchange
from orchestrator.store.backend import AuditTrail, StateBackend, WriteAheadJournal
from orchestrator.store.state import State

__all__ = ["ActionFailed", "ActionResult", "Applier"]


class Applier:
    def __init__(
        self,
        *,
        exchange: Exchange,
        backend: StateBackend,
        state: State,
        journal: WriteAheadJournal,
        audit: AuditTrail,
        open_sink: SinkOpener,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_result: Callable[[ActionResult], None] | None = None,
        project_dir: Path | None = None,
        on_switch_failed: SwitchListener | None = None,
    ) -> None:
        self.exchange = exchange
        self.ledger = Ledger(
            backend=backend, state=state, journal=journal, audit=audit, clock=clock
        )
        self.deleter = Deleter(exchange, self.ledger, open_sink)
        self.switcher = Switcher(
            self.ledger, open_sink, self.deleter, clock, project_dir or Path.cwd(), on_switch_failed
        )
        self.keys = KeyMaker(
            exchange, self.ledger, SinkIO(open_sink), self.deleter, clock, self.switcher
        )
        self.updater = Updater(exchange, self.ledger, clock)
        self.reconciliation = Reconciliation(self.ledger, open_sink, clock)
        self.on_result = on_result
        self.results: list[ActionResult] = []

    @property
    def state(self) -> State:
        return self.ledger.state

    async def apply(self, changeset: Changeset) -> list[ActionResult]:
        for step in sorted({phase(a) for a in changeset.actions}):
            batch = [a for a in changeset.actions if phase(a) == step]
            await asyncio.gather(*(self._run_all(lane) for lane in _lanes(batch)))
        return self.results

    async def _run_all(self, lane: list[Action]) -> None:
        for action in lane:
            await self._run(action)

    async def finish(self) -> None:
        """Write the state file after the run: it takes in the run's state log and anchors
        the audit log's head as of the run's last line (each action records its state change
        before it writes its audit line)."""
        await self.ledger.close(save=bool(self.results))

    def close(self) -> None:
        """Stop the ledger's writer; what was submitted is still written. For a run that
        ended without `finish`."""
        self.ledger.committer.close(wait=False)

    async def _run(self, action: Action) -> None:
        try:
            message = await self._dispatch(action)
            result = ActionResult(action, True, message)
        except (ActionFailed, ExchangeError) as exc:
            result = ActionResult(action, False, str(exc))
        except Exception as exc:  # a sink or store failure fails this action, not the whole apply
            result = ActionResult(action, False, f"{action.address}: {safe(exc)}")
        self.results.append(result)
        if self.on_result:
            self.on_result(result)

    async def _dispatch(self, action: Action) -> str:
        match action:
            case CreateSubaccount():
                return await self._create_subaccount(action)
            case CreateKey():
                return await self.keys.create_key(action)
            case Rotate():
                return await self.keys.rotate(action)
            case UpdatePermissions():
                return await self.updater.update_permissions(action)
            case UpdateIps():
                return await self.updater.update_ips(action)
            case DeleteKey():
                return await self.deleter.delete_key(action)
            case Reconcile():
                return await self.reconciliation.reconcile(action)
            case Rename():
                return await self.reconciliation.rename(action)
            case Reload():
                return await self.switcher.reload(action)
            case MoveMaterial():
                return await self.reconciliation.move(action)

    async def _create_subaccount(self, action: CreateSubaccount) -> str:
        op = await self.ledger.intent("create_subaccount", action)
        crashpoints.reached("before_call")
        try:
            email = await self._make_virtual(action.virtual)
        except AmbiguousOutcome:
            found = await self._find_virtual(action.virtual)
            if found is None:
                await self.ledger.outcome(op, error="ambiguous outcome; sub-account not found")
                raise ActionFailed(
                    f"creating virtual sub-account {action.virtual} had an unknown outcome and it "
                    "is not live; re-run apply"
                ) from None
            email = found
        except ExchangeError as exc:
            await self.ledger.outcome(op, error=exc)
            await self.ledger.audit("create_subaccount", action, outcome="failed", detail=str(exc))
            raise
        crashpoints.reached("after_call")
        await self.ledger.commit(
            transitions.subaccount_created(self.ledger.state, action.subaccount, email)
        )
        await self.ledger.outcome(op, result={"email": email})
        await self.ledger.audit("create_subaccount", action, detail={"email": email})
        return f"created virtual sub-account {email}"

    async def _make_virtual(self, virtual: str) -> str:
        """Create the sub-account; after an unknown outcome with no such sub-account live, once
        more: unlike a key, a second one cannot be made (Binance refuses the same name)."""
        try:
            return await self.exchange.create_virtual_subaccount(virtual)
        except AmbiguousOutcome:
            found = await self._find_virtual(virtual)
            if found is not None:
                return found
        return await self.exchange.create_virtual_subaccount(virtual)

    async def _find_virtual(self, virtual: str) -> str | None:
        prefix = f"{virtual}{VIRTUAL_EMAIL_MARKER}".lower()
        subs = await self.exchange.list_all_subaccounts()
        return next((s.email for s in subs if s.email.lower().startswith(prefix)), None)


def _lanes(batch: list[Action]) -> list[list[Action]]:
    """The phase's actions as lanes that run concurrently, each one action after another.

    A sub-account's new keys share a lane: the exchange takes its creates one at a time
    anyway, so each key's material is made and stored just before its own create, and the
    first creates of a run do not wait behind the preparation of every other key. Every
    other action has a lane of its own."""
    lanes: list[list[Action]] = []
    makers: dict[str, list[Action]] = {}
    for action in batch:
        if isinstance(action, CreateKey | Rotate):
            if action.subaccount not in makers:
                makers[action.subaccount] = []
                lanes.append(makers[action.subaccount])
            makers[action.subaccount].append(action)
        else:
            lanes.append([action])
    return lanes
