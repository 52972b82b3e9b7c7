"""What each command does, in order: lock, reconcile the journal, refresh, decide, confirm,
execute. The CLI supplies a `Ui` (how to show, ask and report) and renders the result.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from typing import Protocol

from orchestrator.engine import alerts
from orchestrator.engine.changeset import Action, Changeset, Finding
from orchestrator.engine.refresh import Progress, refresh
from orchestrator.engine.workspace import Workspace
from orchestrator.store.files import next_serial


class Refused(Exception):
    """The operation cannot go ahead; the message says why and what to do."""


class Ui(Protocol):
    def note(self, text: str) -> None:
        """A line for the user (recovered intents, scope, outcomes)."""

    def show(self, changeset: Changeset, *, with_summary: bool = True, width: int = 0) -> None:
        """The changeset's lines (addresses padded to at least `width`)."""

    def confirm(self) -> bool:
        """Ask for 'yes'; only called when confirmation was not waived."""

    def progress(self, label: str) -> contextlib.AbstractContextManager[Progress | None]: ...

    def executing(
        self, actions: Sequence[Action] | None
    ) -> contextlib.AbstractContextManager[Callable]:
        """A callback for each finished action (ActionResult), while `actions` (None: not
        known up front) run."""

    def deleted(self, entry) -> None:
        """One key a lockdown deleted (or failed to)."""


def check_targets(ws: Workspace, targets: Collection[str]) -> None:
    keys = ws.plan.desired.keys()
    known = {k.label for k in keys} | {k.address for k in keys}
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise Refused(
            f"--target {', '.join(unknown)}: no such label in {ws.plan.path.name} "
            f"(labels: {', '.join(sorted({k.label for k in keys}))})"
        )


async def plan(
    ws: Workspace, ui: Ui, *, targets: Collection[str], refresh_live: bool
) -> tuple[Changeset, Mapping[str, int], list[str]]:
    """(changeset, calls per endpoint, notes on an interrupted run); no exchange call without
    refresh. plan only reads: an interrupted run's journal is left for apply to reconcile."""
    check_targets(ws, targets)
    ws.refuse_unwritable_sinks()
    notes = interrupted_run(ws)
    if not refresh_live:
        changeset, _ = await ws.make_changeset(None, targets=targets)
        return changeset, {}, notes
    async with ws.exchange() as exchange:
        with ui.progress("Refreshing") as progress:
            changeset, _ = await ws.make_changeset(exchange, targets=targets, progress=progress)
        return changeset, exchange.call_counts(), notes


def interrupted_run(ws: Workspace) -> list[str]:
    """What an interrupted run left open in the journal, said without touching it."""
    journal = ws.backend.journal(ws.name)
    notes = [report] if (report := journal.damage_report()) else []
    pending = journal.pending()
    if pending:
        notes.append(
            f"an interrupted run left {len(pending)} operation(s) open; `orchestrator apply` "
            "reconciles them with the live account before it changes anything, so it may do "
            "less than shown here"
        )
    return notes


async def apply(
    ws: Workspace,
    ui: Ui,
    *,
    saved: Changeset | None,
    targets: Collection[str],
    auto_approve: bool,
    break_stale: bool,
) -> tuple[Changeset, list] | None:
    """Apply a fresh plan or exactly a saved changeset. Returns (changeset, results), or None
    when the user declined. A saved changeset was reviewed when it was planned: it is applied
    without asking. With --auto-approve and no saved changeset, it streams. Signs of
    compromise and a failure are notified."""
    async with _failure_notified(ws, "apply"):
        outcome = await _apply(ws, ui, saved, targets, auto_approve, break_stale)
    if outcome is not None:
        await _notify_outcome(ws, "apply", *outcome)
    return outcome


async def _apply(
    ws: Workspace,
    ui: Ui,
    saved: Changeset | None,
    targets: Collection[str],
    auto_approve: bool,
    break_stale: bool,
) -> tuple[Changeset, list] | None:
    targets = list(saved.targets) if saved else list(targets)
    check_targets(ws, targets)
    ws.refuse_unwritable_sinks()
    with _locked(ws, "apply", break_stale):
        async with ws.exchange() as exchange:
            await _recover(ws, ui, exchange, "apply")
            if saved is None and auto_approve:
                return await _stream(ws, ui, exchange, targets)
            with ui.progress("Refreshing") as progress:
                changeset, _ = await ws.make_changeset(exchange, targets=targets, progress=progress)
            if saved is not None:
                ws.check_saved(saved, changeset)
                changeset = saved
            ui.show(changeset)
            _refuse_blocking(changeset)
            if not changeset.has_changes:
                return changeset, []
            if not (auto_approve or saved is not None) and not ui.confirm():
                return None
            return changeset, await _execute(ws, ui, exchange, changeset, "apply")


async def _stream(ws: Workspace, ui: Ui, exchange, targets) -> tuple[Changeset, list]:
    from orchestrator.engine.render import address_width

    width = address_width(ws.plan.desired)
    with ui.executing(None) as on_result:  # the actions are not known up front
        changeset, results = await ws.stream_apply(
            exchange,
            "apply",
            targets=targets,
            on_changeset=lambda part: ui.show(part, with_summary=False, width=width),
            on_result=on_result,
        )
    if changeset.blocking:
        ui.show(changeset, with_summary=False)
    _refuse_blocking(changeset)
    return changeset, results


async def rotate(
    ws: Workspace,
    ui: Ui,
    *,
    due: bool,
    labels: Collection[str],
    auto_approve: bool,
    break_stale: bool,
    reload_only: bool = False,
) -> tuple[Changeset, list] | None:
    """`rotate`: due or named rotations, or with `reload_only` the named keys' reload/check
    steps alone. A failure is notified."""
    command = "rotate --due" if due else "rotate"
    async with _failure_notified(ws, command):
        outcome = await _rotate(ws, ui, due, labels, auto_approve, break_stale, reload_only)
    if outcome is not None:
        await _notify_outcome(ws, command, *outcome)
    return outcome


async def _rotate(
    ws: Workspace,
    ui: Ui,
    due: bool,
    labels: Collection[str],
    auto_approve: bool,
    break_stale: bool,
    reload_only: bool,
) -> tuple[Changeset, list] | None:
    from orchestrator.engine.rotate import (
        RotationRefused,
        reload_changeset,
        rotation_changeset,
    )

    ws.refuse_unwritable_sinks()
    with _locked(ws, "rotate", break_stale):
        async with ws.exchange() as exchange:
            await _recover(ws, ui, exchange, "rotate")
            state = ws.load_state()
            live = await refresh(exchange, ws.plan.desired, state, open_sink=ws.sink)
            try:
                changes = (
                    functools.partial(reload_changeset, labels=labels)
                    if reload_only
                    else functools.partial(rotation_changeset, due=due, labels=labels)
                )
                changeset = changes(
                    ws.plan.desired, live, state, ws.clock(), plan_hash=ws.plan.source_hash
                )
            except RotationRefused as exc:
                raise Refused(str(exc)) from None
            if not changeset.has_changes:
                return changeset, []
            ui.show(changeset)
            if not auto_approve and not ui.confirm():
                return None
            return changeset, await _execute(ws, ui, exchange, changeset, "rotate")


async def audit(ws: Workspace) -> tuple[list[Finding], Mapping[str, int]]:
    """The hygiene findings over every sub-account, and the calls it took. Findings at or
    above the notification level, and signs of compromise, are notified."""
    async with _failure_notified(ws, "audit"):
        found, calls = await _audit(ws)
    event = alerts.audit_findings(found, _managed(ws), ws.notifier.level)
    if event:
        await ws.notify(event)
    return found, calls


async def _audit(ws: Workspace) -> tuple[list[Finding], Mapping[str, int]]:
    from orchestrator.engine import hygiene

    async with ws.exchange() as exchange:
        state = ws.load_state()
        live = await refresh(
            exchange, ws.plan.desired, state, every_subaccount=True, open_sink=ws.sink
        )
        evidence = await hygiene.gather(exchange, ws.plan.desired, live, state, ws.sink)
        found = hygiene.findings(ws.plan.desired, live, state, ws.clock(), evidence)
        return found, exchange.call_counts()


async def check(ws: Workspace):
    """Before the first apply: the master key's own permissions and whitelist, and the
    planned sub-accounts, judged against the plan (engine/preflight.py). Reads only."""
    from orchestrator.engine import hygiene, preflight
    from orchestrator.exchange.errors import ExchangeError
    from orchestrator.exchange.logging import mask_key
    from orchestrator.exchange.models import ApiRestrictions

    async with ws.exchange() as exchange:
        master = await hygiene.master_restrictions(exchange)
        subaccounts: list | str
        try:
            subaccounts = await exchange.list_all_subaccounts()
        except ExchangeError as exc:
            subaccounts = str(exc)
        problems = preflight.problems(ws.plan.desired, subaccounts, master)
        return preflight.CheckReport(
            mask_key(exchange.master_api_key),
            master if isinstance(master, ApiRestrictions) else None,
            tuple(problems),
            exchange.call_counts(),
        )


async def lockdown(
    ws: Workspace, ui: Ui, *, names: Collection[str], yes: bool, break_stale: bool
) -> list | None:
    """Delete every key of the sub-accounts in scope. None when the user declined. Asking
    first, it lists every key the user is asked about; keys made while the user reads are
    deleted too: every key in scope goes. What was deleted, or why it stopped, is notified."""
    from orchestrator.notify import LockdownRan

    scope: list[str] = []
    async with _failure_notified(ws, "lockdown"):
        deleted = await _lockdown(ws, ui, names, yes, break_stale, scope)
    if deleted is not None:
        failed = sum(1 for d in deleted if d.error)
        await ws.notify(LockdownRan(len(scope), len(deleted) - failed, failed))
    return deleted


async def _lockdown(
    ws: Workspace, ui: Ui, names: Collection[str], yes: bool, break_stale: bool, scope: list
) -> list | None:
    from orchestrator.engine.lockdown import ScopeError, lockdown, scope_emails

    with _locked(ws, "lockdown", break_stale):
        async with ws.exchange() as exchange:
            state = ws.state_or_new()
            plan_emails = {n: r.email for n, r in state.subaccounts.items()}
            plan_emails |= {s.name: s.email for s in ws.plan.desired.subaccounts if s.email}
            try:
                emails = await scope_emails(exchange, names, plan_emails)
            except ScopeError as exc:
                raise Refused(str(exc)) from None
            if yes:
                ui.note(f"Lockdown: every API key of {len(emails)} sub-account(s) goes:")
                for email in emails:
                    ui.note(f"  {email}")
            else:
                for line in await _lockdown_scope_lines(exchange, emails, state):
                    ui.note(line)
                if not ui.confirm():
                    return None
            scope.extend(emails)
            audit_log = ws.backend.audit("lockdown")
            audit_log.append("lockdown", detail={"scope": emails})
            deleted, state = await lockdown(
                exchange,
                emails,
                state=state,
                journal=ws.backend.journal(ws.name),
                audit=audit_log,
                open_sink=ws.sink,
                on_deleted=ui.deleted,
            )
            ws.backend.save_state(next_serial(state))
            ws.backend.journal(ws.name).clear()
    return deleted


async def _lockdown_scope_lines(exchange, emails: list[str], state) -> list[str]:
    """Every key a lockdown would delete, by sub-account, with the count: what the user is
    asked to confirm. API keys are shown by a short prefix only."""
    from orchestrator.engine.lockdown import keys_in_scope, managed_addresses
    from orchestrator.store.audit import mask_key

    listed = await keys_in_scope(exchange, emails)
    managed = managed_addresses(state)
    total = sum(len(keys) for keys in listed.values())
    lines = [
        f"Lockdown: {total} API key(s) in {len(emails)} sub-account(s) will be deleted, "
        "managed or not:"
    ]
    for email, keys in listed.items():
        lines.append(f"  {email}" + ("" if keys else " (no keys)"))
        width = max((len(k.api_name) for k in keys), default=0)
        for key in sorted(keys, key=lambda k: k.api_name):
            address = managed.get(key.api_key)
            owner = f"managed as {address}" if address else "not managed by this plan"
            lines.append(f"    {key.api_name:<{width}}  {mask_key(key.api_key)}  {owner}")
    return lines


async def adopt(
    ws: Workspace, command: str, *, subaccount=None, api_key=None, label=None
) -> list[str]:
    """`import` one key (with api_key), or adopt every key whose apiName names a label.

    `state rebuild` never reads the journal: it rebuilds from the live account alone, so a
    damaged journal cannot stop the command that repairs state; the next apply reconciles
    any open intent against the rebuilt state."""
    from orchestrator.engine import adopt as adoption

    with ws.backend.lock(ws.name, command):
        async with ws.exchange() as exchange:
            if command != "state rebuild":
                await ws.recover(exchange, command, locked=True)
            state = ws.state_or_new()
            live = await refresh(exchange, ws.plan.desired, state, open_sink=ws.sink)
        try:
            if api_key:
                state = adoption.import_key(
                    ws.plan.desired,
                    live,
                    state,
                    subaccount=subaccount,
                    api_key=api_key,
                    label=label,
                )
                messages = [f"{subaccount}/{label}: imported"]
            else:
                state, messages = adoption.rebuild(ws.plan.desired, live, state, ws.clock())
        except adoption.AdoptError as exc:
            raise Refused(str(exc)) from None
        ws.backend.save_state(next_serial(state))
        audit_log = ws.backend.audit(command)
        for message in messages:
            audit_log.append(command.replace(" ", "_"), detail=message)
    return messages


async def reconcile_state(ws: Workspace, command: str) -> list[str]:
    """After `state restore`: record what the live account and the sinks prove the backup
    missed (the key bots read, generations in grace from now, generations gone), changing
    no key on the exchange. Returns a line per label reconciled."""
    from dataclasses import replace

    from orchestrator.engine.changeset import Reconcile

    with _locked(ws, command, False):
        async with ws.exchange() as exchange:
            await ws.recover(exchange, command, locked=True)
            changeset, _ = await ws.make_changeset(exchange)
            reconciles = tuple(a for a in changeset.actions if isinstance(a, Reconcile))
            if not reconciles:
                return ["State agrees with the live account and the sinks."]
            results = await ws.execute(exchange, replace(changeset, actions=reconciles), command)
    return [f"{r.action.address}: {r.message}" for r in results]


@contextlib.asynccontextmanager
async def _failure_notified(ws: Workspace, command: str) -> AsyncIterator[None]:
    """Notify that `command` stopped with an error, then let the error go on."""
    try:
        yield
    except Exception as exc:
        await ws.notify(alerts.stopped(command, exc))
        raise


async def _notify_outcome(ws: Workspace, command: str, changeset: Changeset, results) -> None:
    """Notify signs of compromise the run saw, then actions that failed."""
    for event in (
        alerts.compromise_in(changeset, _managed(ws), command),
        alerts.failed_actions(command, results),
    ):
        if event:
            await ws.notify(event)


def _managed(ws: Workspace) -> set[str]:
    return {sub.name for sub in ws.plan.desired.subaccounts}


@contextlib.contextmanager
def _locked(ws: Workspace, command: str, break_stale: bool) -> Iterator[None]:
    with ws.backend.lock(ws.name, command, force_break_stale=break_stale):
        yield


async def _recover(ws: Workspace, ui: Ui, exchange, command: str) -> None:
    for message in await ws.recover(exchange, command, locked=True):
        ui.note(f"recovered: {message}")


def _refuse_blocking(changeset: Changeset) -> None:
    if changeset.blocking:
        raise Refused("the plan cannot be applied until the findings above are fixed")


async def _execute(ws: Workspace, ui: Ui, exchange, changeset: Changeset, command: str) -> list:
    with ui.executing(changeset.actions) as on_result:
        return await ws.execute(exchange, changeset, command, on_result)
