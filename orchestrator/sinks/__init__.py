"""Key-material sinks: where secrets go. `open_sink("file:secrets/", project_dir)`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orchestrator.sinks.base import Sink
from orchestrator.sinks.dotenv import DotenvSink
from orchestrator.sinks.errors import (
    CorruptMaterial,
    NoPendingKey,
    NoSuchGeneration,
    SinkConfigError,
    SinkConflict,
    SinkError,
    UnsafeSinkPath,
    VaultError,
)
from orchestrator.sinks.filesink import FileSink
from orchestrator.sinks.material import KeyMaterial, KeyType, split_address
from orchestrator.sinks.paths import GitCheck, resolve_sink_path
from orchestrator.sinks.vault import VaultSink, open_vault

__all__ = [
    "CorruptMaterial",
    "DotenvSink",
    "FileSink",
    "KeyMaterial",
    "KeyType",
    "NoPendingKey",
    "NoSuchGeneration",
    "Sink",
    "SinkConfigError",
    "SinkConflict",
    "SinkError",
    "UnsafeSinkPath",
    "VaultError",
    "VaultSink",
    "bot_facing_location",
    "key_material_location",
    "material_location",
    "open_sink",
    "split_address",
]


def open_sink(
    spec: str,
    project_dir: Path,
    env: Mapping[str, str] = os.environ,
    git: GitCheck | None = None,
) -> Sink:
    """The sink a plan's `secrets:` value names: `file:DIR`, `dotenv:PATH`, `vault:MOUNT/PATH`.

    Relative paths are taken from `project_dir` and may not leave it; absolute paths may.
    `git` keeps git's answers about paths; sinks opened with one share them.
    """
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise SinkConfigError(
            f"{spec!r} is not a sink: use file:DIR, dotenv:PATH or vault:MOUNT/PATH"
        )
    if kind == "file":
        return FileSink(resolve_sink_path(target, project_dir), project_dir, spec, git)
    if kind == "dotenv":
        if target.endswith("/"):
            raise SinkConfigError(f"{spec!r} names a directory; dotenv: takes a file path")
        return DotenvSink(resolve_sink_path(target, project_dir), project_dir, spec, git)
    if kind == "vault":
        return open_vault(target, env, spec)
    raise SinkConfigError(
        f"{spec!r}: unknown sink kind {kind!r}; use file:DIR, dotenv:PATH or vault:MOUNT/PATH"
    )


def material_location(spec: str, address: str) -> str:
    """Where the sink `spec` keeps the material bots read for the key at `address`, written
    as the plan writes paths (no secret, nothing opened): `file:DIR/<sub>/<label>.json`,
    the `dotenv:` file itself, or `vault:MOUNT/PATH/<sub>/<label>`."""
    return key_material_location(spec, *split_address(address))


def key_material_location(spec: str, sub: str, label: str) -> str:
    """`material_location` for a key named by its parts, already checked (a planned key)."""
    kind, _, target = spec.partition(":")
    if kind == "file":
        return f"file:{target.rstrip('/')}/{sub}/{label}.json"
    if kind == "vault":
        return "vault:" + "/".join(part for part in (target.strip("/"), sub, label) if part)
    return spec


def bot_facing_location(sink: Sink, address: str) -> str:
    """Where a bot reads the key at `address`: the dotenv file, the current JSON file, or
    the Vault path (`MOUNT/PATH`). Told to reload commands; never holds a secret."""
    if isinstance(sink, DotenvSink):
        return str(sink.env_path)
    if isinstance(sink, FileSink):
        return str(sink.path(address, "current"))
    if isinstance(sink, VaultSink):
        return f"{sink.mount}/{sink.key_path(address)}"
    return sink.spec
