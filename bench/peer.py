"""The peer: a compact asyncio script a competent engineer would write in an afternoon.

Per-endpoint fixed-window budgets (60 calls of weight 3000 per window, aligned to the clock
like Binance's), Ed25519 keys made locally, one fsync'd file per key, a 429 answered by sleeping
Retry-After, a -1021 by a resync and a resend. No plan, state, journal, audit log or reconciliation.

    python bench/peer.py refresh URL WINDOW_S
    python bench/peer.py create URL WINDOW_S OUT_DIR KEYS_PER_SUB EMAIL...

It prints one JSON line: {"calls": n, "rate_limited": n, "keys": n}.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from emu import MASTER_KEY, MASTER_SECRET

KEYS = "/sapi/v1/sub-account/subAccountApi"
IPS = "/sapi/v1/sub-account/subAccountApi/ipRestriction"
SUBS = "/sapi/v1/sub-account/list"
CALLS_PER_WINDOW = {KEYS: 60, IPS: 60, SUBS: 12_000}
KEY_IPS = "203.0.113.10"
counts = {"calls": 0, "rate_limited": 0}


class Budget:
    """Fixed windows aligned to the clock; a call waits for the next one when this one is full."""

    def __init__(self, limit: int, window_s: float, offset_s: float) -> None:
        self.limit, self.window_s, self.offset_s = limit, window_s, offset_s
        self.window, self.used = -1, 0

    async def take(self) -> None:
        while True:
            now = time.time() + self.offset_s
            window = math.floor(now / self.window_s)
            if window != self.window:
                self.window, self.used = window, 0
            if self.used < self.limit:
                self.used += 1
                return
            await asyncio.sleep((window + 1) * self.window_s - now + 0.01 * self.window_s)


class Peer:
    def __init__(self, url: str, window_s: float) -> None:
        self.http = httpx.AsyncClient(
            base_url=url, timeout=30, limits=httpx.Limits(max_connections=100)
        )
        self.window_s = window_s
        self.offset_ms = 0
        self.budgets: dict[tuple[str, str], Budget] = {}

    async def sync(self) -> None:
        server = (await self.http.get("/api/v3/time")).json()["serverTime"]
        self.offset_ms = server - int(time.time() * 1000)

    async def call(self, method: str, path: str, **params) -> dict:
        key = (method, path)
        if key not in self.budgets:
            limit = CALLS_PER_WINDOW[path]
            self.budgets[key] = Budget(limit, self.window_s, self.offset_ms / 1000)
        while True:
            await self.budgets[key].take()
            stamp = int(time.time() * 1000) + self.offset_ms
            query = urlencode({**params, "timestamp": stamp}, quote_via=quote)
            sig = hmac.new(MASTER_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
            signed = f"{query}&signature={sig}"
            headers = {"X-MBX-APIKEY": MASTER_KEY}
            counts["calls"] += 1
            if method == "POST":  # everything in the body: publicKey is refused in the query
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                answer = await self.http.post(path, content=signed, headers=headers)
            else:
                answer = await self.http.request(method, f"{path}?{signed}", headers=headers)
            if answer.status_code == 429:
                counts["rate_limited"] += 1
                await asyncio.sleep(float(answer.headers.get("Retry-After", self.window_s)))
                continue
            if answer.status_code == 400 and answer.json().get("code") == -1021:
                await self.sync()  # refused unseen: resync and resend
                continue
            answer.raise_for_status()
            return answer.json()

    async def refresh(self) -> int:
        emails, page = [], 1
        while True:
            subs = (await self.call("GET", SUBS, page=page, limit=200))["subAccounts"]
            emails += [s["email"] for s in subs]
            if len(subs) < 200:
                break
            page += 1

        async def keys_of(email: str) -> int:
            rows = (await self.call("GET", KEYS, email=email, size=100))["rows"]
            ips = (self.call("GET", IPS, email=email, subAccountApiKey=r["apikey"]) for r in rows)
            return len(await asyncio.gather(*ips))

        return sum(await asyncio.gather(*(keys_of(e) for e in emails)))

    async def create(self, out: Path, emails: list[str], per_sub: int) -> int:
        async def one(email: str, j: int) -> None:
            private = Ed25519PrivateKey.generate()
            public_pem = private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            name = f"peer-Bot{j:02d}"
            made = await self.call(
                "POST",
                KEYS,
                email=email,
                apiName=name,
                status=2,
                ipAddress=KEY_IPS,
                canTrade=str(j == 0).lower(),
                canFuturesTrade=str(j == 0).lower(),
                publicKey=public_pem.decode(),
            )
            private_pem = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            record = {"email": email, "apiName": name, "apiKey": made["apiKey"]}
            record["privateKey"] = private_pem.decode()
            await asyncio.to_thread(_write_synced, out / f"{email}-{name}.json", record)

        async def sub(email: str) -> None:
            existing = (await self.call("GET", KEYS, email=email, size=100))["rows"]
            taken = {r["apiName"] for r in existing}
            await asyncio.gather(
                *(one(email, j) for j in range(per_sub) if f"peer-Bot{j:02d}" not in taken)
            )

        await asyncio.gather(*(sub(e) for e in emails))
        return len(list(out.glob("*.json")))


def _write_synced(path: Path, record: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


async def main() -> None:
    mode, url, window_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    peer = Peer(url, window_s)
    await peer.sync()
    if mode == "refresh":
        keys = await peer.refresh()
    else:
        out = Path(sys.argv[4])
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys = await peer.create(out, sys.argv[6:], int(sys.argv[5]))
    await peer.http.aclose()
    print(json.dumps({**counts, "keys": keys}))


if __name__ == "__main__":
    asyncio.run(main())
