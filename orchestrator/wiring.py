"""What the commands are wired to: the exchange a plan names, and the clock it runs on.

The engine opens exchanges only through the factory it is handed; this module is the one
place that knows the sandbox exists. The sandbox is the real client over an in-process
transport to the emulator, persisted to `state/sandbox.json`; it never reads the BINANCE_*
variables, so real master credentials are never written into a sandbox file. Binance has no
API that creates a regular (non-virtual) sub-account, so the sandbox account starts with the
ones the plan names by email, as if they had been made in the web UI.

A plan with several master accounts opens one client per account, each with its own pacing
and server-time offset: on Binance with that account's credential variables, in the sandbox
with a master of the account's name that the sandbox keeps beside its first one. The accounts
of one run share the sandbox's emulator (and so its data file).

Tests move the sandbox's clock with ORCHESTRATOR_NOW; a plan on a real exchange (Binance or
`emulator serve`) always runs on the system clock, whatever the environment holds.

Notifications go to the plan's `notify:` targets and ORCHESTRATOR_NOTIFY's (see
orchestrator.notify); tests hand in a notifier of their own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config import ExchangeSettings
from orchestrator.engine.workspace import Clock, ExchangeFactory, Workspace, system_clock
from orchestrator.exchange.client import BinanceClient
from orchestrator.notify import Notice, NotifierOpener, NotifySettings, open_notifier

if TYPE_CHECKING:  # the emulator is imported when a sandbox is opened, not for a real exchange
    from orchestrator.emulator.core import Emulator

SANDBOX_DATA = Path("state") / "sandbox.json"
SANDBOX_URL = "https://sandbox.invalid"
BINANCE_URL = "https://api.binance.com"
#: An ISO 8601 instant the sandbox's clock reads instead of the system clock.
SANDBOX_NOW = "ORCHESTRATOR_NOW"

EmulatorOpener = Callable[[Path], "Emulator"]


def open_sandbox(data_path: Path) -> Emulator:
    """The sandbox emulator over its data file, with a master of its own. It runs on the
    sandbox's clock, so a key made while a test moved the clock is as old as the tool thinks.
    That clock can stand still (ORCHESTRATOR_NOW), so the sandbox does not pace key creates
    (Binance: about one per sub-account per second)."""
    from orchestrator.emulator import persist
    from orchestrator.emulator.accounts import ApiKey
    from orchestrator.emulator.core import Emulator
    from orchestrator.emulator.master import generate_master

    data = persist.load(data_path) or {}
    stored = data.get("master")
    master = ApiKey.from_json(stored) if stored else None
    if master is None:
        master = generate_master(int(time.time() * 1000))
    return Emulator(
        data_path,
        master=master,
        persist_master=True,
        clock=lambda: sandbox_clock().timestamp(),
        key_creation_interval_s=0,
    )


def exchange_factory(open_emulator: EmulatorOpener = open_sandbox) -> ExchangeFactory:
    """An `ExchangeFactory` whose sandbox runs on the emulator `open_emulator` returns for
    the sandbox data file (tests hand in one with faults, latency or a spy)."""
    sandboxes = _SharedSandboxes(open_emulator)

    def open_exchange(
        settings: ExchangeSettings, project_dir: Path, subaccount_emails: Collection[str] = ()
    ) -> BinanceClient:
        """A client for the plan's exchange (for the master account `settings` names).
        Raises CredentialsError for missing credentials."""
        options = _client_options(settings)
        if settings.kind == "sandbox":
            data_path = project_dir / SANDBOX_DATA
            emulator = sandboxes.acquire(data_path)
            try:
                return _sandbox_client(
                    emulator,
                    settings.account,
                    options,
                    subaccount_emails,
                    on_close=lambda: sandboxes.release(data_path),
                )
            except BaseException:
                sandboxes.release(data_path)
                raise
        from orchestrator.exchange.credentials import master_signer_from_env

        signer = master_signer_from_env(os.environ, settings.credentials)
        return BinanceClient(settings.endpoint or BINANCE_URL, signer, **options)

    return open_exchange


class _SharedSandboxes:
    """The sandbox emulators in use, by data file: the clients of one run (one per master
    account) share an emulator, so neither overwrites the other's changes in the data file;
    once the last is closed, the next run reads the file afresh."""

    def __init__(self, open_emulator: EmulatorOpener) -> None:
        self._open = open_emulator
        self._in_use: dict[Path, tuple[Emulator, int]] = {}

    def acquire(self, data_path: Path) -> Emulator:
        key = data_path.resolve()
        emulator, users = self._in_use.get(key) or (self._open(data_path), 0)
        self._in_use[key] = (emulator, users + 1)
        return emulator

    def release(self, data_path: Path) -> None:
        key = data_path.resolve()
        emulator, users = self._in_use[key]
        if users <= 1:
            del self._in_use[key]
        else:
            self._in_use[key] = (emulator, users - 1)


def _closing_transport(emulator: Emulator, on_close: Callable[[], None]) -> Any:
    """The in-process transport, which says when its client is closed. Made here so that the
    emulator is imported only when a sandbox is opened."""
    from orchestrator.emulator.transport import EmulatorTransport

    class ClosingTransport(EmulatorTransport):
        def __init__(self) -> None:
            super().__init__(emulator)
            self._on_close: Callable[[], None] | None = on_close

        async def aclose(self) -> None:
            done = self._on_close
            self._on_close = None
            if done is not None:
                done()

    return ClosingTransport()


open_exchange = exchange_factory()


def _client_options(settings: ExchangeSettings) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if settings.recv_window_ms:
        options["recv_window_ms"] = settings.recv_window_ms
    if settings.rate_window_s:
        options["rate_window_s"] = settings.rate_window_s
    return options


def _sandbox_client(
    emulator: Emulator,
    account: str | None,
    options: dict,
    emails: Collection[str],
    on_close: Callable[[], None],
) -> BinanceClient:
    """A client signed by the sandbox's master of `account` (None: its first master), which
    holds the regular sub-accounts `emails`."""
    from pydantic import SecretStr

    from orchestrator.exchange.errors import ExchangeError
    from orchestrator.exchange.signing import HmacSigner

    master = emulator.add_master(account) if account else emulator.master
    try:
        emulator.add_subaccounts(emails, account)
    except ValueError as exc:
        raise ExchangeError(
            f"sandbox: {exc}",
            hint="a sub-account stays with the master account it was made under; give the "
            "plan's sub-account its first `account:` back",
        ) from None
    if master.secret is None:
        raise ValueError("the sandbox's master key has no HMAC secret; delete state/sandbox.json")
    signer = HmacSigner(master.api_key, SecretStr(master.secret))
    options = {"key_creation_interval_s": emulator.creation_pace.interval_s, **options}
    transport = _closing_transport(emulator, on_close)
    return BinanceClient(SANDBOX_URL, signer, transport=transport, **options)


def sandbox_clock() -> datetime:
    """Now, or the instant in ORCHESTRATOR_NOW, read on every call so a test can move it."""
    fixed = os.environ.get(SANDBOX_NOW)
    if fixed:
        return datetime.fromisoformat(fixed).astimezone(UTC)
    return datetime.now(UTC)


def clock_for(settings: ExchangeSettings) -> Clock:
    """Only the sandbox's clock can be moved; a real exchange gets the system clock, so a
    stray ORCHESTRATOR_NOW cannot make keys fall due or grace periods end early."""
    return sandbox_clock if settings.kind == "sandbox" else system_clock


@dataclass(frozen=True)
class Wiring:
    """How the commands open a plan's exchange, pick its clock and send notifications.
    `orchestrator.cli.main` and the typer context object (`app(obj=Wiring(...))`) take one,
    so tests can inject a fake or faulty exchange, or a recording notifier, without patching
    module internals."""

    open_exchange: ExchangeFactory = field(default=open_exchange)
    clock_for: Callable[[ExchangeSettings], Clock] = field(default=clock_for)
    open_notifier: NotifierOpener = field(default=open_notifier)

    @classmethod
    def with_sandbox(cls, emulator: Emulator) -> Wiring:
        """The default wiring, with `emulator` as the sandbox whatever its data file."""
        return cls(open_exchange=exchange_factory(lambda _data_path: emulator))

    def open_workspace(
        self, explicit_plan: Path | None, cwd: Path | None = None, *, failure_of: str = ""
    ) -> Workspace:
        """The plan's workspace. When `failure_of` names a command, a workspace that cannot
        be opened (a plan with errors, no plan, an unusable state file) is notified as that
        command's failure, to ORCHESTRATOR_NOTIFY's targets (the plan's cannot be read): a
        scheduled run must not fail in silence."""
        [workspace] = self._opened(
            failure_of,
            cwd,
            lambda root: [
                Workspace.open(
                    explicit_plan,
                    self.open_exchange,
                    cwd=root,
                    clock_for=self.clock_for,
                    open_notifier=self.open_notifier,
                )
            ],
        )
        return workspace

    def open_accounts(
        self,
        explicit_plan: Path | None,
        only: Collection[str] = (),
        cwd: Path | None = None,
        *,
        failure_of: str = "",
    ) -> list[Workspace]:
        """A workspace per master account of the plan (those in `only`, else all); a failure
        to open them is notified as `open_workspace`'s is."""
        return self._opened(
            failure_of,
            cwd,
            lambda root: Workspace.open_accounts(
                explicit_plan,
                self.open_exchange,
                only=only,
                cwd=root,
                clock_for=self.clock_for,
                open_notifier=self.open_notifier,
            ),
        )

    def _opened(
        self, failure_of: str, cwd: Path | None, open_them: Callable[[Path], list[Workspace]]
    ) -> list[Workspace]:
        root = Path(cwd or Path.cwd())
        try:
            return open_them(root)
        except Exception as exc:
            if failure_of:
                self._notify_unopened(failure_of, exc, root)
            raise

    def _notify_unopened(self, command: str, exc: Exception, root: Path) -> None:
        """The project is named by its folder, since its plan could not be read."""
        from orchestrator.engine.alerts import stopped
        from orchestrator.notify import warn_undelivered
        from orchestrator.store.files import LocalFileBackend

        try:
            head = LocalFileBackend(root).audit_head()
            notice = Notice(root.resolve().name or "/", head, stopped(command, exc))
            self.open_notifier(NotifySettings()).send(notice)
        except Exception as problem:  # noqa: BLE001 - a notification never decides a run
            warn_undelivered("every target", f"the notifier raised {type(problem).__name__}")
