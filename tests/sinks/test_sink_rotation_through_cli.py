"""Rotations through the CLI against the sandbox: what the file sink keeps and destroys."""

from __future__ import annotations

from pathlib import Path

from orchestrator.sinks import open_sink
from orchestrator.wiring import open_sandbox
from tests.engine.sandbox_kit import cli

ADDRESS = "quant/QuantBot-BTC"


def live_keys(project: Path) -> set[str]:
    emulator = open_sandbox(project / "state" / "sandbox.json")
    return {k.api_key for s in emulator.accounts.subs.values() for k in s.keys.values()}


def files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_two_rotations_in_grace_keep_every_live_generation(project: Path):
    cli("apply", "--auto-approve")
    cli("rotate", "--label", "QuantBot-BTC", "--auto-approve")
    cli("rotate", "--label", "QuantBot-BTC", "--auto-approve")
    sink = open_sink("file:secrets/", project)
    held, live = sink.read_held(ADDRESS), live_keys(project)
    assert [m.generation for m in held] == [1, 2]
    assert all(m.api_key in live for m in held)
    assert sink.read_current(ADDRESS).api_key in live


def test_lockdown_leaves_no_private_key_on_disk(project: Path):
    cli("apply", "--auto-approve")
    cli("rotate", "--label", "QuantBot-BTC", "--auto-approve")
    sink = open_sink("file:secrets/", project)
    secrets = [sink.read_current(ADDRESS), *sink.read_held(ADDRESS)]
    cli("lockdown", "--all", "--yes")
    for material in secrets:
        assert files_holding(project, material.secret.get_secret_value()) == []
