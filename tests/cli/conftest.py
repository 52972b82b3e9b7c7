"""Fixtures for tests that run `orchestrator emulator serve` as a subprocess on loopback."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ALNUM = string.ascii_letters + string.digits


def token(n: int = 64) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


@pytest.fixture
def credentials() -> dict[str, str]:
    return {"BINANCE_API_KEY": token(), "BINANCE_API_SECRET": token()}


@pytest.fixture
def env(credentials) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BINANCE_") and k != "ORCHESTRATOR_NOW"
    }
    return {**clean, **credentials}


def admin_headers(announced: str) -> dict[str, str]:
    """The header `emulator serve` announced for its admin routes (/_emulator/*)."""
    found = re.search(r"admin token:\s+(\w+) \(send as ([\w-]+)\)", announced)
    assert found, announced
    return {found.group(2): found.group(1)}


@contextlib.contextmanager
def emulator_serve(data: Path, env: dict, *options: str) -> Iterator[tuple[str, str]]:
    """`emulator serve --port 0` with `options`; yields (base URL, announcement); always
    stopped."""
    command = [
        sys.executable,
        "-m",
        "orchestrator",
        "emulator",
        "serve",
        "--port",
        "0",
        "--data",
        str(data),
        *options,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        lines: list[str] = []
        while not any(line.startswith("Ctrl-C") for line in lines):
            line = process.stdout.readline()
            assert line, f"emulator serve exited: {process.stderr.read()}"
            lines.append(line.strip())
        announced = "\n".join(lines)
        base_url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", announced).group(1)
        yield base_url, announced
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


@pytest.fixture
def server(tmp_path: Path, env):
    with emulator_serve(tmp_path / "emu.json", env) as served:
        yield served
