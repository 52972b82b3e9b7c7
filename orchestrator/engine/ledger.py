"""The bookkeeping of a run: the journal, the audit log and the state, in the order that
keeps a crash recoverable.

Every mutating call is an operation: its intent is journaled before the call and its outcome
after; what it did is recorded in state through `engine.transitions` and logged at once (the
state log; the state file is written when the run ends); what a person should see later goes
to the audit log.

Each of these returns once what it wrote is durable, and the executors await it before the
step that depends on it (the intent before the call, the state change before the outcome).
The writes are made by a worker thread, never on the event loop, in groups: the appends of
concurrent actions that wait at the same time share one fsync per file.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from orchestrator.engine.changeset import Action, CreateKey
from orchestrator.exchange.errors import AmbiguousOutcome, ExchangeError
from orchestrator.store.audit import mask_key
from orchestrator.store.backend import AuditTrail, StateBackend, WriteAheadJournal
from orchestrator.store.files import next_serial
from orchestrator.store.groupcommit import GroupCommitter, GroupTarget
from orchestrator.store.journal import intent_record, outcome_record
from orchestrator.store.state import State
from orchestrator.store.statelog import StateChange, change_line


class ActionFailed(Exception):
    """An action could not be carried out; the message says what happened and what to do."""


@dataclass(frozen=True)
class ActionResult:
    action: Action
    ok: bool
    message: str


class Ledger:
    def __init__(
        self,
        *,
        backend: StateBackend,
        state: State,
        journal: WriteAheadJournal,
        audit: AuditTrail,
        clock: Callable[[], datetime],
        committer: GroupCommitter | None = None,
    ) -> None:
        self.backend = backend
        self.state = state
        self.journal = journal
        self.audit_trail = audit
        self.clock = clock
        self.committer = committer or GroupCommitter()
        self._states = backend.state_writer(state.plan)
        self._changed = False

    async def commit(self, state: State) -> None:
        """Make `state` the recorded one, with the next serial; returns once it is durable.
        `state` is derived from `self.state`: only the records it changed are written."""
        after = state.model_copy(update={"serial": self.state.serial + 1})
        line = change_line(self.state, after)
        self.state = after
        self._changed = True
        await self._durable(self._states, StateChange(after, line))

    async def close(self, *, save: bool) -> None:
        """End the run's bookkeeping: once everything is written, the state file is written
        (with the next serial) when the run changed state or `save` asks for it, so that it
        anchors the audit log's head as of the run's last line."""
        try:
            if save or self._changed:
                saved = await self._durable(
                    self._states, StateChange(next_serial(self.state), None)
                )
                self.state = saved
                self._changed = False
        finally:
            self.committer.close(wait=False)

    async def _durable(self, target: GroupTarget, item: object) -> Any:
        return await asyncio.wrap_future(self.committer.submit(target, item))

    def email_of(self, action: CreateKey) -> str:
        """The sub-account email of a create planned before its sub-account existed."""
        if action.email:
            return action.email
        record = self.state.subaccounts.get(action.subaccount)
        if record is None:
            raise ActionFailed(
                f"{action.address}: its sub-account {action.subaccount} was not created"
            )
        return record.email

    async def intent(self, name: str, action: Action, **extra: Any) -> str:
        """Journal that the call `name` on `action` is about to be made; returns its op id
        once the intent is durable, so the call may be made."""
        op = uuid.uuid4().hex
        record = intent_record(op, {"op": name, **action.to_dict(), **extra})
        await self._durable(self.journal, record)
        return op

    async def outcome(self, op: str, *, result: dict | None = None, error: Any = None) -> None:
        await self._durable(self.journal, outcome_record(op, result=result, error=error))

    async def fail(self, op: str, name: str, action: Action, exc: ExchangeError) -> NoReturn:
        await self.outcome(op, error=exc)
        api_key = getattr(action, "api_key", None)
        await self.audit(name, action, api_key=api_key, outcome="failed", detail=str(exc))
        raise exc

    async def audit(
        self,
        name: str,
        action: Action,
        *,
        api_key: str | None = None,
        outcome: str = "ok",
        detail: Any = None,
    ) -> None:
        event = self.audit_trail.event(
            name,
            subaccount=action.subaccount,
            label=getattr(action, "label", None) or getattr(action, "api_name", None),
            api_key=api_key,
            outcome=outcome,
            detail=detail,
        )
        await self._durable(self.audit_trail, event)

    async def confirmed_write(
        self,
        op: str,
        name: str,
        action: Action,
        what: str,
        *,
        write: Callable[[], Awaitable[object]],
        took_effect: Callable[[], Awaitable[bool]],
    ) -> None:
        """An idempotent write (permissions, delete) whose outcome the client could not tell.

        Reconciled, not blindly retried: the live account is read back, and only if the write
        did not take effect is it made once more (harmless, being idempotent). Creates never
        come here: a second create would make a second key.
        """
        for last in (False, True):
            try:
                await write()
                return
            except AmbiguousOutcome:
                if await took_effect():
                    return
                if last:
                    await self.outcome(op, error=f"ambiguous outcome; {what} not confirmed")
                    raise ActionFailed(
                        f"{action.address}: {what} not confirmed; re-run apply"
                    ) from None
            except ExchangeError as exc:
                await self.fail(op, name, action, exc)


def mask(api_key: str | None) -> str:
    return mask_key(api_key) or "-"


def quietly(step: Callable[[], object]) -> None:
    """Best-effort clean-up on a failure path: its own failure must not hide the first one."""
    try:
        step()
    except Exception:  # noqa: BLE001 - the original error is what gets reported
        pass


async def quietly_async(step: Callable[[], Awaitable[object]]) -> None:
    try:
        await step()
    except Exception:  # noqa: BLE001 - the original error is what gets reported
        pass


def safe(exc: BaseException) -> str:
    """An exception's class and message, for errors from sinks (which never carry secrets)."""
    return f"{type(exc).__name__}: {exc}"
