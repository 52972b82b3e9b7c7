"""The one interface every sink implements.

Each key has up to three slots, after AWS Secrets Manager's rotation stages:
*pending* (written before the key is live, or before it is promoted), *current* (what the
bots use) and *previous* (the old generation, kept through the grace period). Every step is
idempotent so that it can be re-run after a crash.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from orchestrator.sinks.material import KeyMaterial


@runtime_checkable
class Sink(Protocol):
    spec: str

    def check(self, address: str) -> None:
        """Raise if writing this key here would be unsafe or impossible; writes nothing."""

    def write_pending(self, material: KeyMaterial) -> str:
        """Store `material` as pending (replacing any pending) and return a reference to it."""

    def read_pending(self, address: str) -> KeyMaterial | None: ...

    def discard_pending(self, address: str) -> None:
        """Drop pending material whose key never went live (a create that did not happen)."""

    def promote(self, address: str, generation: int | None = None) -> None:
        """pending -> current, current -> previous.

        With no pending material, a current one of `generation` means a promote already
        happened (a re-run after a crash): nothing to do. Otherwise NoPendingKey.
        """

    def read_current(self, address: str) -> KeyMaterial | None: ...

    def read_previous(self, address: str) -> KeyMaterial | None: ...

    def exists(self, address: str) -> bool:
        """True when there is current (not revoked) material for the key."""

    def mark_revoked(self, address: str) -> None:
        """The current key was revoked: keep no usable current material for it."""

    def delete_previous(self, address: str) -> None:
        """The previous generation is deleted on the exchange: drop its material."""
