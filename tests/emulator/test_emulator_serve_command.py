"""`orchestrator emulator serve` in a subprocess, and the HTTP server's dropped connections."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest
from emulator_kit import LIST_SUBS, VIRTUAL, HmacSigner, SignedClient

from orchestrator.emulator.core import Emulator
from orchestrator.emulator.server import start_in_thread


class Served:
    """A running `emulator serve` and what it announced."""

    def __init__(self, data, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "emulator",
                "serve",
                "--port",
                "0",
                "--data",
                str(data),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        while not any(line.startswith("Ctrl-C") for line in self.lines):
            line = self.process.stdout.readline()
            assert line, self.process.stderr.read()
            self.lines.append(line.strip())
        text = "\n".join(self.lines)
        self.base_url = re.search(r"listening on (http://\S+)", text).group(1)
        exported = re.search(r"export BINANCE_API_KEY=(\w+) BINANCE_API_SECRET=(\w+)", text)
        self.api_key, self.secret = exported.groups()
        token = re.search(r"admin token:\s+(\w+) \(send as ([\w-]+)\)", text)
        self.admin_headers = {token.group(2): token.group(1)}

    def client(self) -> SignedClient:
        clock_only = Emulator(None)
        return SignedClient(
            clock_only, HmacSigner(self.api_key, self.secret), server_url=self.base_url
        )

    def stop(self, sig=signal.SIGINT) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=10)


@pytest.fixture
def data(tmp_path):
    return tmp_path / "state" / "sandbox-server.json"


def test_serve_prints_master_serves_and_stops_cleanly(data):
    served = Served(data, "--time-scale", "10", "--seed", "3")
    try:
        client = served.client()
        email = client.ok("POST", VIRTUAL, {"subAccountString": "served"})["email"]
        assert client.ok("GET", LIST_SUBS, {"limit": 5})["subAccounts"][0]["email"] == email
    finally:
        assert served.stop() == 0
    restarted = Served(data)
    try:
        assert restarted.api_key == served.api_key
        assert restarted.client().ok("GET", LIST_SUBS, {"limit": 5})["subAccounts"]
    finally:
        restarted.stop(signal.SIGTERM)


def test_killed_server_leaves_a_readable_data_file(data):
    served = Served(data)
    client = served.client()
    for i in range(5):
        client.ok("POST", VIRTUAL, {"subAccountString": f"k{i}"})
    served.stop(signal.SIGKILL)
    assert len(Emulator(data).accounts.subs) == 5


def test_admin_inject_over_http_drops_the_connection(data):
    served = Served(data)
    try:
        client = served.client()
        injected = httpx.post(
            served.base_url + "/_emulator/inject",
            json={"kind": "drop_after", "endpoint": "create_virtual_subaccount"},
            headers=served.admin_headers,
        )
        assert injected.status_code == 200
        with pytest.raises(httpx.TransportError):
            client.call("POST", VIRTUAL, {"subAccountString": "dropped"})
        added = httpx.post(
            served.base_url + "/_emulator/subaccount",
            json={"email": "ui@example.com"},
            headers=served.admin_headers,
        )
        assert added.status_code == 200
        listed = client.ok("GET", LIST_SUBS, {"limit": 5})["subAccounts"]
        assert [s["email"].split("@")[0] for s in listed] == ["dropped_virtual", "ui"]
    finally:
        served.stop()


def test_threaded_server_drop_before_commit_changes_nothing():
    emulator = Emulator(None)
    server, base_url = start_in_thread(emulator)
    try:
        client = SignedClient(
            emulator,
            HmacSigner(emulator.master.api_key, emulator.master.secret),
            server_url=base_url,
        )
        emulator.inject("drop_before", "create_virtual_subaccount")
        with pytest.raises(httpx.TransportError):
            client.call("POST", VIRTUAL, {"subAccountString": "never"})
        assert emulator.accounts.subs == {}
        assert client.ok("POST", VIRTUAL, {"subAccountString": "later"})["email"]
    finally:
        server.shutdown()
        server.server_close()


def test_serve_refuses_a_corrupt_data_file(data):
    data.parent.mkdir(parents=True)
    data.write_text("{oops")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "emulator",
            "serve",
            "--port",
            "0",
            "--data",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
