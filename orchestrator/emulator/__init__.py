"""The Binance emulator: the sandbox exchange, in-process or over HTTP (`emulator serve`).

- `core.Emulator` is transport-independent: `handle(EmuRequest) -> EmuResponse`.
- `transport.EmulatorTransport` plugs it into httpx (sync and async clients).
- `server.start_in_thread` / `server.run_server` put it on a loopback socket.

Data file (JSON, replaced atomically; changes in between are appended to `<data>.journal`,
see persist.py)::

    {"version": 1,
     "master": {api_key, key_type, secret | public_key, ...} | null,
     "emailToken": "<8 chars>",            # the random part of virtual e-mails
     "nextSubUserId": 1000003,
     "subAccounts": [{"email", "sub_user_id", "create_time", "is_freeze",
                      "keys": [{"api_key", "api_name", "key_type": "HMAC_SHA256" | "ED25519"
                                | "RSA", "secret" | "public_key", "flags": {"canTrade": ...},
                                "status": 1 | 2 | 3, "ip_list", "third_party_name",
                                "create_time", "update_time", "email"}]}]}

Secrets are stored (Binance keeps them too, to verify signatures) but no endpoint returns one
after creation. Importing this package stays cheap; the submodules pull in cryptography.
"""

from __future__ import annotations

__all__ = [
    "Emulator",
    "EmuRequest",
    "EmuResponse",
    "EmulatorTransport",
    "start_in_thread",
    "run_server",
]


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
