"""Signature checks over the bytes a request carried, as Binance does them.

Binance signs `totalParams`: the query string concatenated (no separator) with the request
body, both without the `signature` parameter. HMAC signatures are hex; Ed25519 and RSA
(PKCS#1 v1.5, SHA-256) signatures are base64, URL-encoded on the wire.

The signature must cover the exact bytes received. A signature computed over the parameters
*before* percent-encoding (as python-binance does for form bodies) is refused with -1022
whenever encoding changed them (an '@', a space, a non-ASCII letter), as Binance has done
since 2026-01-15.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from functools import lru_cache
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from orchestrator.emulator import errors
from orchestrator.emulator.accounts import ED25519, HMAC, RSA, ApiKey


def split_signature(raw: bytes) -> tuple[bytes, bytes | None]:
    """`raw` without its `signature=` pairs, and the (still URL-encoded) signature value."""
    kept: list[bytes] = []
    signature: bytes | None = None
    for pair in raw.split(b"&") if raw else []:
        name, _, value = pair.partition(b"=")
        if name == b"signature":
            signature = signature if signature is not None else value
        else:
            kept.append(pair)
    return b"&".join(kept), signature


def payload_and_signature(query: bytes, body: bytes) -> tuple[bytes, str | None]:
    """The payload a valid signature covers (query then body, as received, without the
    `signature` pairs) and the signature."""
    query_rest, query_sig = split_signature(query)
    body_rest, body_sig = split_signature(body)
    signature = query_sig if query_sig is not None else body_sig
    sig_text = None if signature is None else signature.decode("latin-1")
    return query_rest + body_rest, sig_text


def verify(key: ApiKey, payload: bytes, signature: str) -> bool:
    if key.key_type == HMAC:
        return _verify_hmac(key.secret or "", payload, signature)
    raw_sig = _decode_base64_signature(signature)
    if raw_sig is None:
        return False
    public_key = load_public_key(key.public_key or "")
    return _verify_asymmetric(public_key, raw_sig, payload)


def _verify_hmac(secret: str, payload: bytes, signature: str) -> bool:
    given = unquote(signature).strip().lower().encode()
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, given)  # bytes: a non-ASCII signature is just wrong


def _decode_base64_signature(signature: str) -> bytes | None:
    """URL-decode, then base64-decode; a raw '+' that became a space is put back."""
    text = unquote(signature).replace(" ", "+")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _verify_asymmetric(public_key, signature: bytes, payload: bytes) -> bool:
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, payload)
        else:
            public_key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


@lru_cache(maxsize=4096)
def load_public_key(pem: str):
    return serialization.load_pem_public_key(pem.encode())


def parse_public_key(text: str) -> tuple[str, str]:
    """(key type, canonical PEM) of an uploaded `publicKey`: PEM or bare base64 DER.

    Raises -1100 for anything that is not an Ed25519 or RSA (>= 2048 bits) public key.
    """
    key = _load_uploaded_key(text.strip())
    if isinstance(key, ed25519.Ed25519PublicKey):
        key_type = ED25519
    elif isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        key_type = RSA
    else:
        raise errors.bad_request("publicKey must be an Ed25519 or an RSA (2048+ bits) public key.")
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return key_type, pem


def _load_uploaded_key(text: str):
    try:
        if text.startswith("-----BEGIN"):
            return serialization.load_pem_public_key(text.encode())
        der = base64.b64decode("".join(text.split()), validate=True)
        return serialization.load_der_public_key(der)
    except (ValueError, TypeError, binascii.Error):
        raise errors.bad_request("publicKey is not a valid PEM or base64 DER public key.") from None


def public_pem_of_private_key(pem: bytes) -> tuple[str, str]:
    """(key type, public PEM) of a PEM private key file (unencrypted)."""
    private = serialization.load_pem_private_key(pem, password=None)
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return parse_public_key(public)
