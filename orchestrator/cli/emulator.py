"""`emulator serve`: the built-in Binance emulator over HTTP."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from orchestrator.cli.conventions import Group
from orchestrator.cli.errors import emulator_errors, reported


class IpRestrictionMode(str, Enum):
    """What the emulator's v2 IP-restriction call does with the IPs it is given."""

    ADD = "add"
    REPLACE = "replace"


emulator_app = typer.Typer(help="The built-in Binance emulator.", no_args_is_help=True, cls=Group)


@emulator_app.command("serve")
def emulator_serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (keep it loopback)."),
    port: int = typer.Option(8765, "--port", help="TCP port."),
    data: Path = typer.Option(
        Path("state/sandbox-server.json"), "--data", help="Data file (created if missing)."
    ),
    latency_ms: float = typer.Option(0, "--latency-ms", help="Delay added to every answer."),
    fault_rate: float = typer.Option(
        0.0, "--fault-rate", help="Probability (0..1) that a request suffers a random fault."
    ),
    time_scale: float = typer.Option(
        1.0, "--time-scale", help="Rate-limit windows last 60/X seconds."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed for reproducible faults."),
    trusted_ip_header: str | None = typer.Option(
        None,
        "--trusted-ip-header",
        help="Take the caller's IP from this header (e.g. X-Forwarded-For), to test a "
        "whitelisted key from this machine.",
    ),
    master_without_trading: bool = typer.Option(
        False,
        "--master-without-trading",
        help="Start the master key without 'Enable Spot & Margin Trading': Binance then refuses "
        "it key creation and whitelist changes (for tests and demos).",
    ),
    ip_restriction_mode: IpRestrictionMode = typer.Option(
        IpRestrictionMode.ADD,
        "--ip-restriction-mode",
        help="What the v2 IP-restriction call does with the IPs it gets: 'add' them to the "
        "whitelist or 'replace' it (Binance does not document which).",
    ),
    master: list[str] = typer.Option(
        [],
        "--master",
        help="Also hold a master account of this name, with its own sub-accounts and rate "
        "limits; its key and secret are printed at start (repeatable).",
    ),
) -> None:
    """Run the Binance emulator over HTTP until Ctrl-C."""
    from orchestrator.emulator.serve import serve

    with reported(emulator_errors):
        serve(
            host=host,
            port=port,
            data=data,
            latency_ms=latency_ms,
            fault_rate=fault_rate,
            time_scale=time_scale,
            seed=seed,
            trusted_ip_header=trusted_ip_header,
            master_trading=not master_without_trading,
            ip_restriction_mode=ip_restriction_mode.value,
            further_masters=tuple(master),
        )
