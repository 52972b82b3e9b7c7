"""Test helpers for the emulator: signers and a tiny signed httpx client.

Deliberately independent of orchestrator.exchange (written in parallel): requests are signed
here with hmac/cryptography directly, as Binance documents.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from orchestrator.emulator.core import Emulator
from orchestrator.emulator.transport import EmulatorTransport

BASE = "https://api.binance.com"


class FakeClock:
    """A settable clock (seconds), starting at a fixed, realistic time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class HmacSigner:
    api_key: str
    secret: str

    def sign(self, payload: bytes) -> str:
        return hmac.new(self.secret.encode(), payload, hashlib.sha256).hexdigest()


@dataclass
class AsymmetricSigner:
    api_key: str
    private_key: object

    def sign(self, payload: bytes) -> str:
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            raw = self.private_key.sign(payload)
        else:
            raw = self.private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(raw).decode()


def new_ed25519() -> tuple[ed25519.Ed25519PrivateKey, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    return key, public_pem(key)


def new_rsa() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, public_pem(key)


def public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(private_key) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class SignedClient:
    """Signs like Binance documents: signature over query string + body, appended last."""

    def __init__(
        self,
        emulator: Emulator,
        signer,
        *,
        client_ip: str = "127.0.0.1",
        server_url: str | None = None,
    ) -> None:
        """In-process through EmulatorTransport, or over HTTP to `server_url`; `emulator`
        supplies the clock for timestamps."""
        self.emulator = emulator
        self.signer = signer
        if server_url is not None:
            self.http = httpx.Client(base_url=server_url)
        else:
            transport = EmulatorTransport(emulator, client_ip=client_ip)
            self.http = httpx.Client(base_url=BASE, transport=transport)

    def call(
        self,
        method: str,
        path: str,
        params: dict | None = None,
        *,
        body: dict | None = None,
        timestamp: int | None = None,
        recv_window: int | None = None,
        api_key: str | None = None,
        sign: bool = True,
        signature: str | None = None,
        headers: dict | None = None,
    ) -> httpx.Response:
        query = dict(params or {})
        target = query if body is None else body
        if sign:
            if recv_window is not None:
                target["recvWindow"] = recv_window
            target["timestamp"] = timestamp if timestamp is not None else self.now_ms()
        query_text = urlencode(query)
        body_text = urlencode(body) if body is not None else ""
        if sign:
            sig = signature or self.signer.sign((query_text + body_text).encode())
            if body is None:
                query_text += ("&" if query_text else "") + urlencode({"signature": sig})
            else:
                body_text += "&" + urlencode({"signature": sig})
        all_headers = {"X-MBX-APIKEY": api_key or self.signer.api_key, **(headers or {})}
        if body is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        url = path + ("?" + query_text if query_text else "")
        return self.http.request(
            method, url, content=body_text.encode() or None, headers=all_headers
        )

    def ok(self, method: str, path: str, params: dict | None = None, **kw) -> dict | list:
        response = self.call(method, path, params, **kw)
        assert response.status_code == 200, response.text
        return response.json()

    def now_ms(self) -> int:
        return int(self.emulator.now() * 1000)

    def with_signer(self, signer, **kw) -> SignedClient:
        return SignedClient(self.emulator, signer, **kw)


SUBACCOUNT_API = "/sapi/v1/sub-account/subAccountApi"
PERMISSION = "/sapi/v1/sub-account/subAccountApiPermission"
IP_V2 = "/sapi/v2/sub-account/subAccountApi/ipRestriction"
IP_V1 = "/sapi/v1/sub-account/subAccountApi/ipRestriction"
IP_LIST = "/sapi/v1/sub-account/subAccountApi/ipRestriction/ipList"
VIRTUAL = "/sapi/v1/sub-account/virtualSubAccount"
LIST_SUBS = "/sapi/v1/sub-account/list"
RESTRICTIONS = "/sapi/v1/account/apiRestrictions"


def create_hmac_key(client: SignedClient, email: str, name: str = "bot", **params) -> dict:
    return client.ok(
        "POST", SUBACCOUNT_API, {"email": email, "apiName": name, "status": 1, **params}
    )
