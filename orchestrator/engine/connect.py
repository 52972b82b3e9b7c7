"""Opening the exchange a plan names: the in-process sandbox or Binance (or `emulator serve`).

The sandbox is the real client over an in-process transport to the emulator, persisted to
`state/sandbox.json`; it never reads the BINANCE_* variables, so real master credentials are
never written into a sandbox file. Binance has no API that creates a regular (non-virtual)
sub-account, so the sandbox account starts with the ones the plan names by email, as if they
had been made in the web UI.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from orchestrator.config import ExchangeSettings
from orchestrator.exchange.client import BinanceClient

SANDBOX_DATA = Path("state") / "sandbox.json"
SANDBOX_URL = "https://sandbox.invalid"
BINANCE_URL = "https://api.binance.com"


def open_exchange(
    settings: ExchangeSettings, project_dir: Path, sandbox_emails: Iterable[str] = ()
) -> BinanceClient:
    """A client for the plan's exchange. Raises CredentialsError for missing credentials."""
    options = {}
    if settings.recv_window_ms:
        options["recv_window_ms"] = settings.recv_window_ms
    if settings.rate_window_s:
        options["rate_window_s"] = settings.rate_window_s
    if settings.kind == "sandbox":
        return _sandbox_client(project_dir / SANDBOX_DATA, options, sandbox_emails)
    from orchestrator.exchange.credentials import master_signer_from_env

    signer = master_signer_from_env()
    return BinanceClient(settings.endpoint or BINANCE_URL, signer, **options)


def open_sandbox(data_path: Path):
    """The sandbox emulator over its data file, with a master of its own."""
    from orchestrator.emulator import persist
    from orchestrator.emulator.accounts import ApiKey
    from orchestrator.emulator.core import Emulator
    from orchestrator.emulator.master import generate_master

    data = persist.load(data_path) or {}
    stored = data.get("master")
    master = ApiKey.from_json(stored) if stored else None
    if master is None:
        import time

        master = generate_master(int(time.time() * 1000))
    return Emulator(data_path, master=master, persist_master=True)


def _sandbox_client(data_path: Path, options: dict, emails: Iterable[str]) -> BinanceClient:
    from pydantic import SecretStr

    from orchestrator.emulator.transport import EmulatorTransport
    from orchestrator.exchange.signing import HmacSigner

    emulator = open_sandbox(data_path)
    for email in emails:
        emulator.add_subaccount(email)
    signer = HmacSigner(emulator.master.api_key, SecretStr(emulator.master.secret))
    return BinanceClient(SANDBOX_URL, signer, transport=EmulatorTransport(emulator), **options)
