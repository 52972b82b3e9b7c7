"""`emulator serve --trusted-ip-header`: a whitelisted sub-account key can be tried from here."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.exchange.client import BinanceClient
from orchestrator.exchange.errors import Unauthorized
from orchestrator.exchange.models import Permission
from orchestrator.exchange.signing import HmacSigner
from tests.cli.test_cli_emulator_serve_e2e import credentials, env  # noqa: F401  (fixtures)


@pytest.fixture
def trusting_server(tmp_path: Path, env):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "emulator",
            "serve",
            "--port",
            "0",
            "--data",
            str(tmp_path / "emu.json"),
            "--trusted-ip-header",
            "X-Forwarded-For",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        while not any(line.startswith("Ctrl-C") for line in lines):
            line = process.stdout.readline()
            assert line, process.stderr.read()
            lines.append(line.strip())
        yield re.search(r"listening on (http://127\.0\.0\.1:\d+)", "\n".join(lines)).group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


def test_whitelisted_key_answers_only_from_a_listed_ip(trusting_server, credentials):
    master = HmacSigner(
        credentials["BINANCE_API_KEY"], SecretStr(credentials["BINANCE_API_SECRET"])
    )

    async def scenario():
        async with BinanceClient(trusting_server, master) as client:
            email = await client.create_virtual_subaccount("trusted")
            key = await client.create_api_key(
                email, "bot", frozenset({Permission.SPOT}), ["203.0.113.10"]
            )
        sub = HmacSigner(key.api_key, key.secret)
        listed = {"X-Forwarded-For": "203.0.113.10"}
        async with BinanceClient(trusting_server, master, source_ip_header=listed) as client:
            seen = await client.api_restrictions(sub)
        async with BinanceClient(trusting_server, master) as client:
            with pytest.raises(Unauthorized):
                await client.api_restrictions(sub)
        return seen

    assert asyncio.run(scenario()).permissions == {Permission.SPOT}
