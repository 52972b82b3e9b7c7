"""The Binance emulator: the sandbox exchange, in-process or over HTTP (`emulator serve`).

`Emulator` (core.py) is transport-independent; `EmulatorTransport` (transport.py) plugs it
into httpx, `start_in_thread`/`run_server` (server.py) put it on a loopback socket.
Importing this package stays cheap; the submodules pull in cryptography.
"""

from __future__ import annotations

__all__ = ["Emulator", "EmuRequest", "EmuResponse", "EmulatorTransport", "start_in_thread",
           "run_server"]


def __getattr__(name: str):
    if name in ("Emulator", "EmuRequest", "EmuResponse"):
        from orchestrator.emulator import core

        return getattr(core, name)
    if name == "EmulatorTransport":
        from orchestrator.emulator.transport import EmulatorTransport

        return EmulatorTransport
    if name in ("start_in_thread", "run_server"):
        from orchestrator.emulator import server

        return getattr(server, name)
    raise AttributeError(name)
