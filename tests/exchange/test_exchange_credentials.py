from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.exchange.credentials import CredentialVariables, master_signer_from_env
from orchestrator.exchange.errors import CredentialsError
from orchestrator.exchange.signing import Ed25519Signer, HmacSigner

KEY = "MasterKeyAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqr"
SECRET = "CANARY-env-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"
PASS = "CANARY-passphrase-42"


@pytest.fixture
def key_file(tmp_path):
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASS.encode()),
    )
    path = tmp_path / "master.pem"
    path.write_bytes(pem)
    os.chmod(path, 0o600)
    return path


def _error(env: dict) -> CredentialsError:
    with pytest.raises(CredentialsError) as caught:
        master_signer_from_env(env)
    text = str(caught.value)
    for name, value in env.items():
        if name != "BINANCE_PRIVATE_KEY_FILE" and value.strip():
            assert value.strip() not in text, f"{name}'s value leaked into the error"
    return caught.value


def test_hmac_from_key_and_secret():
    signer = master_signer_from_env({"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET})
    assert isinstance(signer, HmacSigner) and signer.api_key == KEY
    assert SECRET not in repr(signer)


def test_values_are_stripped():
    signer = master_signer_from_env(
        {"BINANCE_API_KEY": f" {KEY}\n", "BINANCE_API_SECRET": f"{SECRET}\n"}
    )
    assert signer.api_key == KEY


def test_ed25519_from_an_encrypted_key_file(key_file):
    env = {
        "BINANCE_API_KEY": KEY,
        "BINANCE_PRIVATE_KEY_FILE": str(key_file),
        "BINANCE_PRIVATE_KEY_PASSPHRASE": PASS,
    }
    assert isinstance(master_signer_from_env(env), Ed25519Signer)


def test_missing_api_key_names_the_variables():
    error = _error({"BINANCE_API_SECRET": SECRET})
    assert "BINANCE_API_KEY is not set" in str(error)
    assert "BINANCE_API_SECRET" in str(error) and "BINANCE_PRIVATE_KEY_FILE" in str(error)


def test_nothing_set():
    assert "BINANCE_API_KEY is not set" in str(_error({}))


def test_key_without_secret_or_file():
    error = _error({"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": "  "})
    assert "neither BINANCE_API_SECRET nor BINANCE_PRIVATE_KEY_FILE" in str(error)


def test_secret_and_file_together_are_contradictory(key_file):
    env = {
        "BINANCE_API_KEY": KEY,
        "BINANCE_API_SECRET": SECRET,
        "BINANCE_PRIVATE_KEY_FILE": str(key_file),
    }
    assert "both BINANCE_API_SECRET and BINANCE_PRIVATE_KEY_FILE" in str(_error(env))


def test_passphrase_with_a_secret_is_contradictory():
    env = {
        "BINANCE_API_KEY": KEY,
        "BINANCE_API_SECRET": SECRET,
        "BINANCE_PRIVATE_KEY_PASSPHRASE": PASS,
    }
    assert "BINANCE_PRIVATE_KEY_PASSPHRASE is set" in str(_error(env))


def test_unreadable_key_file(tmp_path):
    env = {"BINANCE_API_KEY": KEY, "BINANCE_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem")}
    error = _error(env)
    assert "cannot be read" in str(error) and "BINANCE_PRIVATE_KEY_FILE" in str(error)


def test_key_file_that_is_not_a_key(tmp_path):
    path = tmp_path / "junk.pem"
    path.write_text(SECRET)
    error = _error({"BINANCE_API_KEY": KEY, "BINANCE_PRIVATE_KEY_FILE": str(path)})
    assert "unusable" in str(error)


def test_encrypted_key_file_without_passphrase_says_where_it_goes(key_file):
    error = _error({"BINANCE_API_KEY": KEY, "BINANCE_PRIVATE_KEY_FILE": str(key_file)})
    assert "encrypted" in str(error) and "BINANCE_PRIVATE_KEY_PASSPHRASE" in str(error)


def test_wrong_passphrase(key_file):
    env = {
        "BINANCE_API_KEY": KEY,
        "BINANCE_PRIVATE_KEY_FILE": str(key_file),
        "BINANCE_PRIVATE_KEY_PASSPHRASE": "CANARY-not-the-pass",
    }
    error = _error(env)
    assert "CANARY-not-the-pass" not in str(error)


FUND2 = CredentialVariables(
    api_key="FUND2_API_KEY",
    secret="FUND2_API_SECRET",
    private_key_file=None,
    passphrase=None,
    where="account fund2 (plans/desk.yaml:5:5)",
)


def test_an_account_reads_only_its_own_variables():
    env = {"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET, "FUND2_API_KEY": "Fund2Key"}
    with pytest.raises(CredentialsError) as caught:
        master_signer_from_env(env, FUND2)
    text = str(caught.value)
    assert text.startswith("account fund2 (plans/desk.yaml:5:5): FUND2_API_KEY is set but")
    assert "not FUND2_API_SECRET" in text and SECRET not in text and "Fund2Key" not in text
    signer = master_signer_from_env({**env, "FUND2_API_SECRET": "other"}, FUND2)
    assert isinstance(signer, HmacSigner) and signer.api_key == "Fund2Key"


def test_a_missing_account_key_variable_is_named():
    with pytest.raises(CredentialsError, match="account fund2 .*FUND2_API_KEY is not set"):
        master_signer_from_env({"BINANCE_API_KEY": KEY}, FUND2)
