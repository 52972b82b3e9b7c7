"""The one interface every sink implements.

A key's material lives in a sink in one of three roles, after AWS Secrets Manager's rotation
stages: *pending* (written before the key is live, or before it is promoted), *current* (the
bot-facing slot: what the bots use) and *held* (every other generation still live, any number
of them, kept until that generation is deleted on the exchange). A held generation is never
overwritten by a later rotation; its material goes only through `destroy`, which leaves
nothing of it behind. `rename` files all of a key's material under a new address (a label
renamed in the plan) without the bot-facing key ever being unreadable. Every step is
idempotent and safe to re-run after a crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from orchestrator.sinks.material import KeyMaterial


@runtime_checkable
class Sink(Protocol):
    spec: str

    def paths(self, address: str) -> list[Path]:
        """The files this sink may write for the key (none for Vault), each of which `check`
        clears; ValueError for an address that is not `sub-account/label`."""

    def check(self, address: str) -> None:
        """Raise if writing this key here would be unsafe or impossible; writes nothing."""

    def write_pending(self, material: KeyMaterial) -> str:
        """Store `material` as pending (replacing any pending) and return a reference to it."""

    def read_pending(self, address: str) -> KeyMaterial | None: ...

    def discard_pending(self, address: str) -> None:
        """Destroy pending material whose key never went live (a create that did not happen)."""

    def promote(self, address: str, generation: int | None = None) -> None:
        """pending -> current; the old current becomes a held generation.

        With no pending material, a current one of `generation` means a promote already
        happened (a re-run after a crash): nothing to do. Otherwise NoPendingKey.
        """

    def read_current(self, address: str) -> KeyMaterial | None:
        """The material of the bot-facing slot, or None."""

    def read_held(self, address: str) -> list[KeyMaterial]:
        """Every other generation kept (not current, not pending), ascending by generation."""

    def make_current(self, address: str, generation: int) -> None:
        """Point the bot-facing slot at a held generation; the old current becomes held.

        Nothing to do when `generation` is already current; NoSuchGeneration when this sink
        holds no material of it.
        """

    def destroy(self, address: str, api_key: str) -> None:
        """The key `api_key` is deleted on the exchange: destroy its material wherever this
        sink holds it (current, held or pending), leaving no copy. Idempotent."""

    def rename(self, old_address: str, new_address: str) -> None:
        """File the material of `old_address` (current, every held generation and pending)
        under `new_address`, its address and label rewritten; nothing stays under the old one.

        The bot-facing api key and secret stay readable where a bot reads them at every moment:
        the new copy is written before the old one goes. Nothing under the old address means
        nothing to do; both present (a crash mid-way) means finish. Material already under the
        new address is never overwritten by different material: SinkConflict instead.
        """

    def exists(self, address: str) -> bool:
        """True when there is current material for the key."""

    def discard_partial_writes(self, address: str) -> None:
        """Remove what an interrupted write of the key's material left half done (temporary
        files that may hold a secret). Called by commands that write, under the lock."""
