"""The master account's credentials, read only from the environment.

Either BINANCE_API_KEY + BINANCE_API_SECRET (an HMAC key), or BINANCE_API_KEY +
BINANCE_PRIVATE_KEY_FILE (an Ed25519 or RSA key; BINANCE_PRIVATE_KEY_PASSPHRASE when the PEM
is encrypted). Error messages name variables, never their values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from orchestrator.exchange.errors import CredentialsError
from orchestrator.exchange.interface import Signer
from orchestrator.exchange.signing import HmacSigner, from_pem

API_KEY = "BINANCE_API_KEY"
API_SECRET = "BINANCE_API_SECRET"
PRIVATE_KEY_FILE = "BINANCE_PRIVATE_KEY_FILE"
PASSPHRASE = "BINANCE_PRIVATE_KEY_PASSPHRASE"

_HOW = (
    f"set {API_KEY} and either {API_SECRET} (HMAC key) or {PRIVATE_KEY_FILE} "
    "(path to the Ed25519/RSA private key PEM)"
)


def master_signer_from_env(environ: Mapping[str, str] = os.environ) -> Signer:
    """The signer of the master account, from environment variables.

    Raises CredentialsError when the variables are missing, contradictory, or the key file
    cannot be used.
    """
    api_key = _get(environ, API_KEY)
    secret = _get(environ, API_SECRET)
    key_file = _get(environ, PRIVATE_KEY_FILE)
    passphrase = _get(environ, PASSPHRASE)
    if api_key is None:
        raise CredentialsError(f"{API_KEY} is not set", hint=_HOW)
    if secret is not None and key_file is not None:
        raise CredentialsError(
            f"both {API_SECRET} and {PRIVATE_KEY_FILE} are set",
            hint=f"unset one: {API_SECRET} for an HMAC key, {PRIVATE_KEY_FILE} for Ed25519/RSA",
        )
    if secret is not None:
        if passphrase is not None:
            raise CredentialsError(
                f"{PASSPHRASE} is set but {PRIVATE_KEY_FILE} is not",
                hint=f"the passphrase only applies to {PRIVATE_KEY_FILE}; unset {PASSPHRASE}",
            )
        return HmacSigner(api_key, SecretStr(secret))
    if key_file is not None:
        return _signer_from_file(api_key, Path(key_file), passphrase)
    raise CredentialsError(
        f"{API_KEY} is set but neither {API_SECRET} nor {PRIVATE_KEY_FILE}", hint=_HOW
    )


def _signer_from_file(api_key: str, path: Path, passphrase: str | None) -> Signer:
    try:
        pem = SecretStr(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(
            f"{PRIVATE_KEY_FILE} points to a file that cannot be read ({type(exc).__name__})",
            hint=f"check that the path in {PRIVATE_KEY_FILE} exists and is readable by this user",
        ) from None
    try:
        return from_pem(api_key, pem, passphrase)
    except CredentialsError as exc:
        raise CredentialsError(
            f"the key in {PRIVATE_KEY_FILE} is unusable: {exc.message}",
            hint=f"{exc.hint + '; ' if exc.hint else ''}the passphrase comes from {PASSPHRASE}",
        ) from None


def _get(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value with surrounding whitespace removed; None when unset or blank."""
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()
