"""`orchestrator emulator serve`: build the emulator, announce it, serve until interrupted."""

from __future__ import annotations

import secrets
import signal
import sys
from pathlib import Path
from typing import TextIO

from orchestrator.emulator.core import ADMIN_TOKEN_HEADER, Emulator
from orchestrator.emulator.master import master_from_env, master_permissions, without_trading
from orchestrator.emulator.server import run_server


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    data: Path = Path("state/sandbox-server.json"),
    latency_ms: float = 0,
    fault_rate: float = 0.0,
    time_scale: float = 1.0,
    seed: int | None = None,
    trusted_ip_header: str | None = None,
    master_trading: bool = True,
    ip_restriction_mode: str = "add",
    further_masters: tuple[str, ...] = (),
    out: TextIO = sys.stdout,
) -> None:
    """Serve until interrupted. `further_masters` names master accounts to hold beside the
    first, each with its own sub-accounts and rate-limit budgets."""
    from_env = master_from_env() is not None
    admin_token = secrets.token_hex(16)
    emulator = Emulator(
        data,
        time_scale=time_scale,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        seed=seed,
        admin_token=admin_token,
        trusted_ip_header=trusted_ip_header,
        ip_restriction_mode=ip_restriction_mode,
    )
    for name in further_masters:
        emulator.add_master(name)
    if not master_trading:
        without_trading(emulator.master)
    signal.signal(signal.SIGTERM, _interrupt)

    def announce(base_url: str) -> None:
        _announce(out, emulator, base_url, from_env, data)

    run_server(emulator, host, port, on_ready=announce)
    print("emulator stopped", file=out, flush=True)


def _announce(out: TextIO, emulator: Emulator, base_url: str, from_env: bool, data: Path) -> None:
    master = emulator.master
    print(f"Binance emulator listening on {base_url} (data: {data})", file=out)
    if from_env:
        print(f"master key: {master.api_key} (from BINANCE_API_KEY)", file=out)
    else:
        print(f"master key:    {master.api_key}", file=out)
        print(f"master secret: {master.secret}", file=out)
        print(
            f"export BINANCE_API_KEY={master.api_key} BINANCE_API_SECRET={master.secret}", file=out
        )
    for name in emulator.masters:
        further = emulator.account(name).master
        print(f"master {name} key:    {further.api_key}", file=out)
        print(f"master {name} secret: {further.secret}", file=out)
    whitelist = ", ".join(master.ip_list) if master.ip_restricted else "none (any IP)"
    print(f"master permissions: {', '.join(master_permissions(master))}", file=out)
    print(f"master IP whitelist: {whitelist}", file=out)
    print(f"admin token:   {emulator.admin_token} (send as {ADMIN_TOKEN_HEADER})", file=out)
    print("Ctrl-C to stop.", file=out, flush=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
