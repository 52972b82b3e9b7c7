"""Request signers for the three key types Binance accepts.

HMAC: hex(HMAC-SHA256(secret, payload)). Ed25519 and RSA (PKCS#1 v1.5, SHA-256): base64 of
the signature; the client URL-encodes it when it puts it on the wire. Secrets and private
keys never appear in a repr or in an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Generic, Self, TypeVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from pydantic import SecretStr

from orchestrator.exchange.errors import CredentialsError
from orchestrator.exchange.logging import mask_key


class HmacSigner:
    """Signs with the secret of a system-generated (HMAC) key."""

    key_type = "hmac"

    def __init__(self, api_key: str, secret: SecretStr | str) -> None:
        self._api_key = api_key
        self._secret = secret if isinstance(secret, SecretStr) else SecretStr(secret)

    @property
    def api_key(self) -> str:
        return self._api_key

    def sign(self, payload: bytes) -> str:
        key = self._secret.get_secret_value().encode()
        return hmac.new(key, payload, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"HmacSigner(api_key={mask_key(self._api_key)!r})"


PrivateKey = TypeVar("PrivateKey", Ed25519PrivateKey, rsa.RSAPrivateKey)


class _PrivateKeySigner(Generic[PrivateKey]):
    """A signer holding the private half of a self-generated key; subclasses say which kind."""

    key_type: str
    _key_class: type[PrivateKey]
    _display: str

    def __init__(self, api_key: str, private_key: object) -> None:
        if not isinstance(private_key, self._key_class):
            raise TypeError(f"{type(self).__name__} needs an {self._display} private key")
        self._api_key = api_key
        self._private_key: PrivateKey = private_key

    @classmethod
    def from_pem(
        cls, api_key: str, pem_bytes: bytes | str | SecretStr, password: bytes | str | None = None
    ) -> Self:
        signer = from_pem(api_key, pem_bytes, password)
        if not isinstance(signer, cls):
            raise CredentialsError(
                f"the PEM holds an {signer._display} key, not an {cls._display} key"
            )
        return signer

    @property
    def api_key(self) -> str:
        return self._api_key

    def public_key_pem(self) -> str:
        return _public_pem(self._private_key)

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._signature(payload)).decode()

    def _signature(self, payload: bytes) -> bytes:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_key={mask_key(self._api_key)!r})"


class Ed25519Signer(_PrivateKeySigner[Ed25519PrivateKey]):
    """Signs with the private half of a self-generated Ed25519 key."""

    key_type = "ed25519"
    _key_class = Ed25519PrivateKey
    _display = "Ed25519"

    def _signature(self, payload: bytes) -> bytes:
        return self._private_key.sign(payload)


class RsaSigner(_PrivateKeySigner[rsa.RSAPrivateKey]):
    """Signs with the private half of a self-generated RSA key (RSASSA-PKCS1-v1_5, SHA-256)."""

    key_type = "rsa"
    _key_class = rsa.RSAPrivateKey
    _display = "RSA"

    def _signature(self, payload: bytes) -> bytes:
        return self._private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())


def from_pem(
    api_key: str, pem_bytes: bytes | str | SecretStr, password: bytes | str | None = None
) -> Ed25519Signer | RsaSigner:
    """A signer for the private key in `pem_bytes`, whichever of Ed25519 or RSA it is.

    Raises CredentialsError (without any of the key material) when the PEM cannot be read,
    the password is wrong or missing, or the key is of another type.
    """
    private_key = _load_private_key(_as_bytes(pem_bytes), _as_bytes(password))
    if isinstance(private_key, Ed25519PrivateKey):
        return Ed25519Signer(api_key, private_key)
    if isinstance(private_key, rsa.RSAPrivateKey):
        return RsaSigner(api_key, private_key)
    raise CredentialsError(
        f"unsupported private key type {type(private_key).__name__}: Binance accepts "
        "Ed25519 or RSA keys"
    )


def generate_ed25519() -> tuple[SecretStr, str]:
    """A new Ed25519 key pair: (private key PKCS#8 PEM as SecretStr, public key PEM)."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SecretStr(private_pem.decode()), _public_pem(private_key)


def _load_private_key(pem: bytes | None, password: bytes | None) -> PrivateKeyTypes:
    if not pem:
        raise CredentialsError("the private key PEM is empty")
    try:
        return serialization.load_pem_private_key(pem, password=password)
    except TypeError:
        hint = "remove the passphrase" if password else "give its passphrase"
        raise CredentialsError(
            f"the private key PEM is {'not ' if password else ''}encrypted", hint=hint
        ) from None
    except Exception:  # cryptography raises several types for unreadable input
        raise CredentialsError(
            "the private key PEM cannot be read (not a PEM private key, or wrong passphrase)",
            hint="use an unencrypted or passphrase-protected PKCS#8 Ed25519 or RSA key",
        ) from None


def _public_pem(private_key: Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _as_bytes(value: bytes | str | SecretStr | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value.encode() if isinstance(value, str) else bytes(value)
