"""Sink errors. None of them ever carries a secret or a Vault token."""

from __future__ import annotations


class SinkError(Exception):
    """Base of every sink error."""


class SinkConfigError(SinkError):
    """The sink spec is malformed or its environment (e.g. VAULT_ADDR) is missing."""


class SinkEnvironmentMissing(SinkConfigError):
    """The sink needs settings from the environment (VAULT_ADDR, VAULT_TOKEN) it was not
    given; the plan itself may be fine."""


class UnsafeSinkPath(SinkError):
    """The path would put secrets where they must not go: in git, through a symlink, outside."""


class SinkConflict(SinkError):
    """Someone else changed the sink (Vault check-and-set) or two keys share one dotenv file."""


class NoPendingKey(SinkError):
    """Promote was asked for but there is no pending material to promote."""


class NoSuchGeneration(SinkError):
    """make_current named a generation this sink does not hold."""


class CorruptMaterial(SinkError):
    """Stored material cannot be read back (hand-edited or damaged)."""


class VaultError(SinkError):
    """Vault refused or could not be reached."""
