"""A stand-in for a trading bot, run as its own process by the reload tests.

    python bot.py ENV_FILE BASE_URL CALLS_FILE ACK_FILE

It reads its dotenv file once at start, then signs a request with that key every ~50 ms
(`GET /sapi/v1/account/apiRestrictions`, HMAC) and appends one JSON line per call to
CALLS_FILE: {"ok": ..., "generation": ..., "status": ...}. On SIGHUP it re-reads the file
before its next call and writes the generation and api key it now uses to ACK_FILE. SIGTERM
ends it. Standard library only, as a bot would be.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

INTERVAL_S = 0.05


def read_env(path: str) -> dict[str, str]:
    values = {}
    with open(path, encoding="utf-8") as source:
        for line in source:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                name, _, value = line.partition("=")
                values[name] = value.strip("'\"")
    return values


def call(base_url: str, key: dict[str, str]) -> int:
    query = f"timestamp={int(time.time() * 1000)}"
    secret = key["BINANCE_API_SECRET"].encode()
    signature = hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"{base_url}/sapi/v1/account/apiRestrictions?{query}&signature={signature}",
        headers={"X-MBX-APIKEY": key["BINANCE_API_KEY"]},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


def acknowledge(ack_file: str, key: dict[str, str]) -> None:
    temporary = ack_file + ".tmp"
    with open(temporary, "w", encoding="utf-8") as out:
        ack = {"generation": key["ORCHESTRATOR_GENERATION"], "api_key": key["BINANCE_API_KEY"]}
        json.dump(ack, out)
    os.replace(temporary, ack_file)


def main(env_file: str, base_url: str, calls_file: str, ack_file: str) -> None:
    hangups = []
    running = [True]
    signal.signal(signal.SIGHUP, lambda *_: hangups.append(1))
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    key = read_env(env_file)
    acknowledge(ack_file, key)
    with open(calls_file, "a", encoding="utf-8") as calls:
        while running[0]:
            if hangups:
                hangups.clear()
                key = read_env(env_file)
                acknowledge(ack_file, key)
            status = call(base_url, key)
            line = {"ok": status == 200, "generation": key["ORCHESTRATOR_GENERATION"]}
            calls.write(json.dumps({**line, "status": status}) + "\n")
            calls.flush()
            time.sleep(INTERVAL_S)


if __name__ == "__main__":
    main(*sys.argv[1:5])
