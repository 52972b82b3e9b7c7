"""Running `orchestrator emulator serve` in a subprocess and talking to its admin routes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

MASTER_KEY = "BenchMasterKey" + "0" * 50
MASTER_SECRET = "BenchMasterSecret" + "1" * 47


def master_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(BINANCE_API_KEY=MASTER_KEY, BINANCE_API_SECRET=MASTER_SECRET)
    env.pop("BINANCE_PRIVATE_KEY_FILE", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmulatorProcess:
    """`python -m orchestrator emulator serve` with Binance's weights, scaled time and latency."""

    def __init__(
        self, data: Path, *, time_scale: float, latency_ms: float, masters: tuple[str, ...] = ()
    ) -> None:
        """`masters`: further master accounts beside the first (`serve --master NAME`)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.time_scale = time_scale
        command = [
            sys.executable,
            "-m",
            "orchestrator",
            "emulator",
            "serve",
            "--port",
            str(self.port),
            "--data",
            str(data),
            "--time-scale",
            str(time_scale),
            "--latency-ms",
            str(latency_ms),
            *(arg for name in masters for arg in ("--master", name)),
        ]
        self.proc = subprocess.Popen(
            command, env=master_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        announced = self.announced = self._read_announcement()
        token = re.search(r"admin token:\s+(\w+) \(send as ([\w-]+)\)", announced)
        if token is None:
            self.proc.kill()
            raise RuntimeError(f"emulator did not start: {announced}{self.proc.stdout.read()}")
        admin_headers = {token.group(2): token.group(1)}
        self.http = httpx.Client(base_url=self.url, timeout=30, headers=admin_headers)

    def _read_announcement(self) -> str:
        """The lines `emulator serve` prints before it serves (up to "Ctrl-C to stop.")."""
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Ctrl-C"):
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        return "".join(lines)

    @property
    def window_s(self) -> float:
        return 60.0 / self.time_scale

    def add_subaccounts(self, emails: list[str], master: str | None = None) -> None:
        body: dict = {"emails": emails} | ({"master": master} if master else {})
        self.http.post("/_emulator/subaccount", json=body).raise_for_status()

    def master_credentials(self, name: str) -> tuple[str, str]:
        """(key, secret) of the further master `name`, as `serve` announced them."""
        key = re.search(rf"master {name} key:\s+(\w+)", self.announced)
        secret = re.search(rf"master {name} secret:\s+(\w+)", self.announced)
        if key is None or secret is None:
            raise RuntimeError(f"emulator announced no master {name}: {self.announced}")
        return key.group(1), secret.group(1)

    def take_stats(self) -> dict:
        """Requests per endpoint and 429s since the last call (and reset the counters)."""
        response = self.http.post("/_emulator/stats")
        response.raise_for_status()
        return response.json()

    def wait_fresh_window(self) -> None:
        """Sleep past the next window boundary so every budget starts empty, then reset stats."""
        now = time.time()
        time.sleep(self.window_s - (now % self.window_s) + 0.02)
        self.take_stats()

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
