from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from orchestrator.exchange.errors import CredentialsError
from orchestrator.exchange.interface import Signer
from orchestrator.exchange.signing import (
    Ed25519Signer,
    HmacSigner,
    RsaSigner,
    from_pem,
    generate_ed25519,
)

VECTOR_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
VECTOR_PAYLOAD = (
    b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    b"&recvWindow=5000&timestamp=1499827319559"
)
VECTOR_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
PAYLOAD = b"email=a%40b.com&recvWindow=5000&timestamp=1700000000000"


def _pem(key, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_hmac_matches_the_documented_vector():
    signer = HmacSigner(API_KEY, SecretStr(VECTOR_SECRET))
    assert signer.sign(VECTOR_PAYLOAD) == VECTOR_SIGNATURE
    assert signer.key_type == "hmac"
    assert signer.api_key == API_KEY


def test_hmac_accepts_a_plain_string_secret():
    assert HmacSigner(API_KEY, VECTOR_SECRET).sign(VECTOR_PAYLOAD) == VECTOR_SIGNATURE


def test_ed25519_signature_verifies_with_the_public_key():
    private_key = Ed25519PrivateKey.generate()
    signer = Ed25519Signer(API_KEY, private_key)
    signature = base64.b64decode(signer.sign(PAYLOAD))
    private_key.public_key().verify(signature, PAYLOAD)  # raises if invalid
    assert signer.key_type == "ed25519"


def test_rsa_signature_verifies_with_pkcs1v15_sha256(rsa_key):
    signer = RsaSigner(API_KEY, rsa_key)
    signature = base64.b64decode(signer.sign(PAYLOAD))
    rsa_key.public_key().verify(signature, PAYLOAD, padding.PKCS1v15(), hashes.SHA256())
    assert signer.key_type == "rsa"


def test_from_pem_detects_ed25519_and_rsa(rsa_key):
    ed = from_pem(API_KEY, _pem(Ed25519PrivateKey.generate()))
    rs = from_pem(API_KEY, _pem(rsa_key))
    assert isinstance(ed, Ed25519Signer) and isinstance(rs, RsaSigner)


def test_from_pem_with_passphrase(rsa_key):
    pem = _pem(rsa_key, b"s3cret-pass")
    assert isinstance(from_pem(API_KEY, pem, "s3cret-pass"), RsaSigner)
    with pytest.raises(CredentialsError, match="encrypted"):
        from_pem(API_KEY, pem)
    with pytest.raises(CredentialsError) as wrong:
        from_pem(API_KEY, pem, "Xyzzy-guess-42")
    assert "s3cret-pass" not in str(wrong.value) and "Xyzzy" not in str(wrong.value)


def test_class_from_pem_refuses_the_other_key_type(rsa_key):
    with pytest.raises(CredentialsError, match="not an Ed25519 key"):
        Ed25519Signer.from_pem(API_KEY, _pem(rsa_key))
    with pytest.raises(CredentialsError, match="not an RSA key"):
        RsaSigner.from_pem(API_KEY, _pem(Ed25519PrivateKey.generate()))


def test_from_pem_refuses_garbage_and_other_curves():
    with pytest.raises(CredentialsError, match="cannot be read"):
        from_pem(API_KEY, b"not a pem")
    with pytest.raises(CredentialsError, match="unsupported private key type"):
        from_pem(API_KEY, _pem(ec.generate_private_key(ec.SECP256R1())))


def test_generate_ed25519_gives_a_secret_private_pem_and_a_matching_public_pem():
    private_pem, public_pem = generate_ed25519()
    assert isinstance(private_pem, SecretStr)
    assert "PRIVATE" not in str(private_pem) and "PRIVATE" not in repr(private_pem)
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    signer = Ed25519Signer.from_pem(API_KEY, private_pem)
    assert signer.public_key_pem() == public_pem
    public_key = serialization.load_pem_public_key(public_pem.encode())
    public_key.verify(base64.b64decode(signer.sign(PAYLOAD)), PAYLOAD)


def test_signers_satisfy_the_protocol_and_hide_secrets(rsa_key):
    signers = [
        HmacSigner(API_KEY, SecretStr(VECTOR_SECRET)),
        Ed25519Signer(API_KEY, Ed25519PrivateKey.generate()),
        RsaSigner(API_KEY, rsa_key),
    ]
    for signer in signers:
        assert isinstance(signer, Signer)
        text = repr(signer) + str(signer)
        assert VECTOR_SECRET not in text and API_KEY not in text
        assert "vmPU…Eh8A" in text
