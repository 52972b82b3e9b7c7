"""What the commands are wired to: the exchange a plan names, and the clock it runs on.

The engine opens exchanges only through the factory it is handed; this module is the one
place that knows the sandbox exists. The sandbox is the real client over an in-process
transport to the emulator, persisted to `state/sandbox.json`; it never reads the BINANCE_*
variables, so real master credentials are never written into a sandbox file. Binance has no
API that creates a regular (non-virtual) sub-account, so the sandbox account starts with the
ones the plan names by email, as if they had been made in the web UI.

Tests move the sandbox's clock with ORCHESTRATOR_NOW; a plan on a real exchange (Binance or
`emulator serve`) always runs on the system clock, whatever the environment holds.
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

    def open_exchange(
        settings: ExchangeSettings, project_dir: Path, subaccount_emails: Collection[str] = ()
    ) -> BinanceClient:
        """A client for the plan's exchange. Raises CredentialsError for missing credentials."""
        options = _client_options(settings)
        if settings.kind == "sandbox":
            emulator = open_emulator(project_dir / SANDBOX_DATA)
            return _sandbox_client(emulator, options, subaccount_emails)
        from orchestrator.exchange.credentials import master_signer_from_env

        signer = master_signer_from_env()
        return BinanceClient(settings.endpoint or BINANCE_URL, signer, **options)

    return open_exchange


open_exchange = exchange_factory()


def _client_options(settings: ExchangeSettings) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if settings.recv_window_ms:
        options["recv_window_ms"] = settings.recv_window_ms
    if settings.rate_window_s:
        options["rate_window_s"] = settings.rate_window_s
    return options


def _sandbox_client(emulator: Emulator, options: dict, emails: Collection[str]) -> BinanceClient:
    from pydantic import SecretStr

    from orchestrator.emulator.transport import EmulatorTransport
    from orchestrator.exchange.signing import HmacSigner

    for email in emails:
        emulator.add_subaccount(email)
    if emulator.master.secret is None:
        raise ValueError("the sandbox's master key has no HMAC secret; delete state/sandbox.json")
    signer = HmacSigner(emulator.master.api_key, SecretStr(emulator.master.secret))
    options = {"key_creation_interval_s": emulator.creation_pace.interval_s, **options}
    return BinanceClient(SANDBOX_URL, signer, transport=EmulatorTransport(emulator), **options)


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
    """How the commands open a plan's exchange and pick its clock. `orchestrator.cli.main`
    and the typer context object (`app(obj=Wiring(...))`) take one, so tests can inject a
    fake or faulty exchange without patching module internals."""

    open_exchange: ExchangeFactory = field(default=open_exchange)
    clock_for: Callable[[ExchangeSettings], Clock] = field(default=clock_for)

    @classmethod
    def with_sandbox(cls, emulator: Emulator) -> Wiring:
        """The default wiring, with `emulator` as the sandbox whatever its data file."""
        return cls(open_exchange=exchange_factory(lambda _data_path: emulator))

    def open_workspace(self, explicit_plan: Path | None, cwd: Path | None = None) -> Workspace:
        return Workspace.open(explicit_plan, self.open_exchange, cwd=cwd, clock_for=self.clock_for)
