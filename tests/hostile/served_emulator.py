"""`orchestrator emulator serve` in a subprocess with its log in a file, and raw-socket helpers
for sending it what no HTTP client would."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

ADMIN_HEADER = "X-Emulator-Admin-Token"


class ServedEmulator:
    """A running `emulator serve --port 0`; stderr goes to `log_path`, never to a pipe that a
    flood of tracebacks could fill."""

    def __init__(self, tmp_path: Path, *options: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
        self.log_path = tmp_path / "serve.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "emulator", "serve", "--port", "0"]
            + ["--data", str(tmp_path / "emu.json"), *options],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self.announced = self._read_announcement()
        self.base_url = re.search(r"listening on (http://\S+)", self.announced).group(1)
        self.host, port = self.base_url.removeprefix("http://").split(":")
        self.port = int(port)
        exported = re.search(r"BINANCE_API_KEY=(\w+) BINANCE_API_SECRET=(\w+)", self.announced)
        self.api_key, self.secret = exported.groups()
        found = re.search(r"admin token:\s+(\w+)", self.announced)
        self.admin_token = found.group(1) if found else ""

    def _read_announcement(self) -> str:
        lines: list[str] = []
        while not any(line.startswith("Ctrl-C") for line in lines):
            line = self.process.stdout.readline()
            assert line, f"emulator serve exited: {self.log()}"
            lines.append(line.strip())
        return "\n".join(lines)

    def admin(self, path: str, payload: dict, *, token: str | None = None) -> httpx.Response:
        headers = {ADMIN_HEADER: (self.admin_token if token is None else token).encode()}
        return httpx.post(self.base_url + path, json=payload, headers=headers, timeout=5)

    def signed(
        self, method: str, path: str, params: dict | None = None, *, timestamp: str | None = None
    ) -> httpx.Response:
        """A request signed with the master key, as Binance documents."""
        stamp = timestamp if timestamp is not None else str(int(time.time() * 1000))
        query = urlencode({**(params or {}), "timestamp": stamp})
        signature = hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        return httpx.request(
            method,
            f"{self.base_url}{path}?{query}&signature={signature}",
            headers={"X-MBX-APIKEY": self.api_key},
            timeout=5,
        )

    def exchange(self, raw: bytes, *, timeout: float = 3.0) -> bytes:
        return raw_exchange(self.host, self.port, raw, timeout=timeout)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self.process.stdout.close()
            self._log.close()


def raw_exchange(host: str, port: int, raw: bytes, *, timeout: float = 3.0) -> bytes:
    """Send `raw`, half-close, and read until the server closes or `timeout` passes."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse before reading everything; its answer is still there
        return read_until_closed(sock, deadline)


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        received += chunk
    return received


def status_of(answer: bytes) -> int | None:
    """The status code of the first HTTP answer in `answer`, None when there is none."""
    found = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return int(found.group(1)) if found else None


def json_body_of(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]
