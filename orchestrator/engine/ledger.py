"""The bookkeeping of a run: the journal, the audit log and the state, in the order that
keeps a crash recoverable.

Every mutating call is an operation: its intent is journaled before the call and its outcome
after; what it did is recorded in state through `engine.transitions` and saved at once;
what a person should see later goes to the audit log.
"""

from __future__ import annotations

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
from orchestrator.store.state import State


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
    ) -> None:
        self.backend = backend
        self.state = state
        self.journal = journal
        self.audit_trail = audit
        self.clock = clock

    def commit(self, state: State) -> None:
        """Make `state` the recorded one, durably, with the next serial."""
        self.state = self.backend.save_state(next_serial(state))

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

    def intent(self, name: str, action: Action, **extra: Any) -> str:
        op = uuid.uuid4().hex
        self.journal.intent(op, {"op": name, **action.to_dict(), **extra})
        return op

    def outcome(self, op: str, *, result: dict | None = None, error: Any = None) -> None:
        self.journal.outcome(op, result=result, error=error)

    def fail(self, op: str, name: str, action: Action, exc: ExchangeError) -> NoReturn:
        self.outcome(op, error=exc)
        api_key = getattr(action, "api_key", None)
        self.audit(name, action, api_key=api_key, outcome="failed", detail=str(exc))
        raise exc

    def audit(
        self,
        name: str,
        action: Action,
        *,
        api_key: str | None = None,
        outcome: str = "ok",
        detail: Any = None,
    ) -> None:
        self.audit_trail.append(
            name,
            subaccount=action.subaccount,
            label=getattr(action, "label", None) or getattr(action, "api_name", None),
            api_key=api_key,
            outcome=outcome,
            detail=detail,
        )

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
                    self.outcome(op, error=f"ambiguous outcome; {what} not confirmed")
                    raise ActionFailed(
                        f"{action.address}: {what} not confirmed; re-run apply"
                    ) from None
            except ExchangeError as exc:
                self.fail(op, name, action, exc)


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
