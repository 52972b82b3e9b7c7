"""A user's project as the commands see it: the plan, its state store, its exchange, its sinks.

Commands open a Workspace, then call `make_changeset` / `run_apply` here; this is where the
steps are put in order (lock, journal reconciliation, refresh, diff, execute).

The workspace does not know which exchanges exist: it is handed an `ExchangeFactory` that
opens the one the plan names, and a clock chosen for that exchange (orchestrator.wiring
decides both).

A plan with several master accounts opens one workspace per account (`open_accounts`): each
has its part of the plan, its own state id, backend (lock, journal, audit log) and client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from orchestrator.config import (
    BackendSettings,
    ExchangeSettings,
    LoadedPlan,
    find_plan,
    load_plan,
)
from orchestrator.domain.model import DesiredSubaccount, Live
from orchestrator.engine.changeset import Changeset
from orchestrator.engine.diff import diff, phase, resolve_email, with_takeovers
from orchestrator.engine.recovery import reconcile_journal
from orchestrator.engine.refresh import (
    Progress,
    keys_of,
    live_from_state,
    read_holdings,
    refresh,
)
from orchestrator.engine.sinkcheck import refuse_unwritable_sinks
from orchestrator.engine.switching import SwitchFailed
from orchestrator.exchange.interface import Exchange
from orchestrator.notify import (
    Event,
    Notice,
    Notifier,
    NotifierOpener,
    SilentNotifier,
    warn_undelivered,
)
from orchestrator.sinks import Sink, open_sink
from orchestrator.sinks.paths import GitCheck
from orchestrator.store.backend import StateBackend
from orchestrator.store.files import LocalFileBackend, new_state, next_serial
from orchestrator.store.state import State

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class ExchangeFactory(Protocol):
    """Opens the exchange `settings` name. An exchange kept in the project (the sandbox)
    lives under `project_dir` and starts with the regular sub-accounts `subaccount_emails`
    (Binance has no API to create those); a remote exchange ignores both."""

    def __call__(
        self, settings: ExchangeSettings, project_dir: Path, subaccount_emails: Collection[str] = ()
    ) -> Exchange: ...


def _system_clock_for(settings: ExchangeSettings) -> Clock:
    return system_clock


def _silent(settings) -> Notifier:
    return SilentNotifier(settings.level)


def open_backend(
    settings: BackendSettings, project_dir: Path, account: str | None = None
) -> StateBackend:
    """The store the plan names, for one master account (None: a plan without `accounts:`):
    the project's local files (the account's own audit log beside the others), or the
    PostgreSQL schema the environment variable `settings.dsn_env` points at, one schema per
    account (`<schema>@<account>`). BackendUnavailable when it cannot be reached."""
    if settings.kind == "postgres":
        from orchestrator.store.postgres import PostgresBackend, open_store

        schema = settings.schema if account is None else f"{settings.schema}@{account}"
        return PostgresBackend(open_store(settings.dsn_env, schema), project_dir)
    return LocalFileBackend(project_dir, account)


@dataclass
class Workspace:
    root: Path
    plan: LoadedPlan
    backend: StateBackend
    open_exchange: ExchangeFactory
    clock: Clock = system_clock
    notifier: Notifier = field(default_factory=SilentNotifier)
    #: called with each SwitchFailed event (a key's reload/check failed): where a
    #: notification hooks on. The failure is in the audit log and the run's results anyway.
    on_switch_failed: Callable[[SwitchFailed], None] | None = None
    _sinks: dict[str, Sink] = field(default_factory=dict)
    _git: GitCheck = field(default_factory=GitCheck)

    @classmethod
    def open(
        cls,
        explicit_plan: Path | None,
        open_exchange: ExchangeFactory,
        *,
        cwd: Path | None = None,
        clock_for: Callable[[ExchangeSettings], Clock] = _system_clock_for,
        open_notifier: NotifierOpener = _silent,
    ) -> Workspace:
        """Find and load the plan (PlanError on any problem) and its state store. A state
        file that cannot be used fails here, before anything reaches the exchange.
        `clock_for` picks the clock for the plan's exchange, `open_notifier` the notifier
        for its notification settings."""
        root = Path(cwd or Path.cwd())
        plan = load_plan(find_plan(explicit_plan, root))
        return cls._for_part(root, plan, open_exchange, clock_for, open_notifier)

    @classmethod
    def open_accounts(
        cls,
        explicit_plan: Path | None,
        open_exchange: ExchangeFactory,
        *,
        only: Collection[str] = (),
        cwd: Path | None = None,
        clock_for: Callable[[ExchangeSettings], Clock] = _system_clock_for,
        open_notifier: NotifierOpener = _silent,
    ) -> list[Workspace]:
        """A workspace per master account of the plan (those named in `only`, else all);
        one for a plan without `accounts:`. PlanError, UnknownAccount, or a state file
        that cannot be used, fail here before anything reaches an exchange."""
        root = Path(cwd or Path.cwd())
        plan = load_plan(find_plan(explicit_plan, root))
        return [
            cls._for_part(root, part, open_exchange, clock_for, open_notifier)
            for part in plan.per_account(only)
        ]

    @classmethod
    def _for_part(
        cls,
        root: Path,
        plan: LoadedPlan,
        open_exchange: ExchangeFactory,
        clock_for: Callable[[ExchangeSettings], Clock],
        open_notifier: NotifierOpener,
    ) -> Workspace:
        workspace = cls(
            root=root,
            plan=plan,
            backend=open_backend(plan.backend, root, plan.account),
            open_exchange=open_exchange,
            clock=clock_for(plan.exchange),
            notifier=open_notifier(plan.notify),
        )
        workspace.load_state()
        return workspace

    @property
    def account(self) -> str | None:
        """The master account this workspace manages; None for a plan without `accounts:`."""
        return self.plan.account

    @property
    def plan_file(self) -> str:
        """The plan file as state records its owner: relative to the project when inside it."""
        path = self.plan.path.resolve()
        root = self.root.resolve()
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    @property
    def name(self) -> str:
        return self.plan.name

    def load_state(self) -> State | None:
        """This plan's state; StateOwnedElsewhere when another plan file owns it."""
        state = self.backend.load_state(self.name)
        if state is None:
            return None
        owner = state.plan_file
        if owner is None or owner == self.plan_file:
            return state.model_copy(update={"plan_file": self.plan_file})
        if not (self.root / owner).exists():  # the plan file was moved or renamed
            return state.model_copy(update={"plan_file": self.plan_file})
        raise StateOwnedElsewhere(
            f"{self.plan_file} and {owner} are both project {self.name!r}: they would share "
            f"{self.backend.describe(self.name)} and each prune the other's keys. Give "
            f"{self.plan_file} its own id with a top-level `project:` line (1 to 12 lowercase "
            "letters and digits)"
        )

    def state_or_new(self) -> State:
        fresh = new_state(self.name).model_copy(update={"plan_file": self.plan_file})
        return self.load_state() or fresh

    async def notify(self, event: Event) -> None:
        """Send `event` to the project's notification targets, with the audit log's head as
        it stands now. Never raises: a notification never decides a run."""
        try:
            notice = Notice(self.name, self.backend.audit_head(), event)
            await asyncio.to_thread(self.notifier.send, notice)
        except Exception as exc:  # noqa: BLE001
            warn_undelivered("every target", f"the notifier raised {type(exc).__name__}")

    def sink(self, spec: str) -> Sink:
        if spec not in self._sinks:
            self._sinks[spec] = open_sink(spec, self.root, git=self._git)
        return self._sinks[spec]

    def refuse_unwritable_sinks(self) -> None:
        """PlanError naming each key whose material apply would refuse to write (a shared or
        unsafe path, a sink that cannot be opened), before anything is changed."""
        refuse_unwritable_sinks(self.plan, self.root, self._git)

    @contextlib.asynccontextmanager
    async def exchange(self) -> AsyncIterator[Exchange]:
        emails = [s.email for s in self.plan.desired.subaccounts if s.email]
        client = self.open_exchange(self.plan.exchange, self.root, emails)
        try:
            yield client
        finally:
            await client.aclose()

    async def recover(self, exchange: Exchange, command: str, *, locked: bool = False) -> list[str]:
        """Reconcile an interrupted run's journal, then clear it. Takes the lock unless the
        caller already holds it. Under the lock, a state log an interrupted run left is
        folded into the state file."""
        journal = self.backend.journal(self.name)
        damage = [report] if (report := journal.damage_report()) else []
        self._discard_partial_writes()
        if not journal.pending():
            if locked:
                await asyncio.to_thread(self.backend.compact, self.name)
            return damage
        guard = contextlib.nullcontext() if locked else self.backend.lock(self.name, command)
        with guard:
            state = self.state_or_new()
            state, messages = await reconcile_journal(
                exchange=exchange,
                journal=journal,
                state=state,
                open_sink=self.sink,
                audit=self.backend.audit(command),
                now=self.clock(),
            )
            self.backend.save_state(next_serial(state))
            journal.clear()
        return damage + messages

    def _discard_partial_writes(self) -> None:
        """Temporary files a killed run left in the sinks (they may hold a secret) go, for
        every key the plan or the state names."""
        state = self.load_state()
        slots = {(k.sink, k.address) for k in self.plan.desired.keys()}
        slots |= {
            (k.sink, f"{k.subaccount}/{k.former_label}")
            for k in self.plan.desired.keys()
            if k.former_label
        }
        if state is not None:
            slots |= {(r.sink, address) for address, r in state.keys.items()}
        for spec, address in sorted(slots):
            try:
                self.sink(spec).discard_partial_writes(address)
            except Exception:  # noqa: BLE001 - an unusable sink is reported where it is used
                continue

    async def make_changeset(
        self,
        exchange: Exchange | None,
        *,
        targets: Collection[str] = (),
        progress: Progress | None = None,
    ) -> tuple[Changeset, Live]:
        """Refresh (unless `exchange` is None: plan from state alone) and diff."""
        state = self.load_state()
        if exchange is None:
            emails = [s.email for s in self.plan.desired.subaccounts if s.email]
            live = live_from_state(state, emails)
        else:
            live = await refresh(
                exchange, self.plan.desired, state, progress=progress, open_sink=self.sink
            )
        changeset = diff(
            self.plan.desired,
            live,
            state,
            self.clock(),
            targets=targets,
            plan_hash=self.plan.source_hash,
        )
        return changeset, live

    def check_saved(self, saved: Changeset, fresh: Changeset) -> None:
        """Refuse a saved changeset computed from another plan, state or live account."""
        reasons = []
        if saved.plan_name != self.name:
            reasons.append(f"it was made for plan {saved.plan_name!r}, not {self.name!r}")
        elif saved.plan_hash != self.plan.source_hash:
            reasons.append(f"{self.plan.path.name} changed since it was made")
        if (saved.state_serial, saved.state_lineage) != (fresh.state_serial, fresh.state_lineage):
            reasons.append(
                f"the state changed since (serial {saved.state_serial} then, "
                f"{fresh.state_serial} now)"
            )
        if saved.live_fingerprint != fresh.live_fingerprint:
            reasons.append("the live account changed since")
        if not reasons and saved.actions != fresh.actions:
            reasons.append(
                "its actions differ from what the same plan, state and account give now "
                "(edited by hand, or a rotation or grace period fell due in between)"
            )
        if reasons:
            raise StaleChangeset(
                "refusing the saved changeset: "
                + "; ".join(reasons)
                + ". Run `orchestrator plan --out FILE` again and review it."
            )

    async def execute(
        self,
        exchange: Exchange,
        changeset: Changeset,
        command: str,
        on_result: Callable | None = None,
    ):
        """Run the changeset (caller holds the lock). Returns the action results."""
        applier = self._applier(exchange, command, on_result)
        try:
            results = await applier.apply(changeset)
            await applier.finish()
        finally:
            applier.close()
        await self._close_journal()
        return results

    async def stream_apply(
        self,
        exchange: Exchange,
        command: str,
        *,
        targets: Collection[str] = (),
        on_changeset: Callable[[Changeset], None] | None = None,
        on_result: Callable | None = None,
    ) -> tuple[Changeset, list]:
        """Plan and apply sub-account by sub-account, for an apply nobody has to approve.

        Each sub-account's actions start as soon as its keys are read, so the creates of one
        overlap the listing of the next: different endpoints, separate rate-limit budgets.
        Nothing starts if any sub-account of the plan is missing. Returns the whole changeset,
        its actions in the order `plan` shows them, and the results (caller holds the lock
        and has reconciled the journal).
        """
        state = self.load_state()
        now = self.clock()
        bare = Live(subaccounts=tuple(await exchange.list_all_subaccounts()))
        upfront = diff(self.plan.desired, bare, state, now, targets=targets)
        if upfront.blocking:
            return replace(upfront, actions=(), findings=upfront.blocking), []
        applier = self._applier(exchange, command, on_result)

        async def one(sub: DesiredSubaccount) -> Changeset:
            email = resolve_email(sub, bare, state)
            desired = replace(self.plan.desired, subaccounts=(sub,))
            listing = keys_of(exchange, email) if email else _no_keys()
            reading = asyncio.to_thread(
                read_holdings, with_takeovers(desired, state), self.sink, state
            )
            listed, material = await asyncio.gather(listing, reading)
            keys = {email: listed} if email else {}
            part = diff(
                desired,
                Live(bare.subaccounts, keys, material),
                state,
                now,
                targets=targets,
                plan_hash=self.plan.source_hash,
            )
            if on_changeset:
                on_changeset(part)
            if not part.blocking:
                await applier.apply(part)
            return part

        try:
            parts = await asyncio.gather(*(one(sub) for sub in self.plan.desired.subaccounts))
            await applier.finish()
        finally:
            applier.close()
        await self._close_journal()
        whole = replace(
            upfront,
            actions=tuple(sorted((a for part in parts for a in part.actions), key=phase)),
            findings=tuple(f for part in parts for f in part.findings),
        )
        return whole, applier.results

    def _applier(self, exchange: Exchange, command: str, on_result: Callable | None):
        from orchestrator.engine.apply import Applier

        return Applier(
            exchange=exchange,
            backend=self.backend,
            state=self.state_or_new(),
            journal=self.backend.journal(self.name),
            audit=self.backend.audit(command),
            open_sink=self.sink,
            clock=self.clock,
            on_result=on_result,
            project_dir=self.root,
            on_switch_failed=self.on_switch_failed,
        )

    async def _close_journal(self) -> None:
        await asyncio.to_thread(self._clear_journal)

    def _clear_journal(self) -> None:
        journal = self.backend.journal(self.name)
        if not journal.pending():  # an intent left open is reconciled by the next run
            journal.clear()


async def _no_keys() -> tuple:
    return ()


class StateOwnedElsewhere(Exception):
    """Two plan files claim one project id, and so one state and one set of keys."""


class StaleChangeset(Exception):
    """A saved changeset no longer matches the plan, state or live account."""
