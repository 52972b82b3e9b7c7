"""A master account's credentials, read only from the environment.

Either BINANCE_API_KEY + BINANCE_API_SECRET (an HMAC key), or BINANCE_API_KEY +
BINANCE_PRIVATE_KEY_FILE (an Ed25519 or RSA key; BINANCE_PRIVATE_KEY_PASSPHRASE when the PEM
is encrypted). A plan with several master accounts names each account's own variables
(`CredentialVariables`). Error messages name variables, never their values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from orchestrator.exchange.errors import CredentialsError
from orchestrator.exchange.interface import Signer
from orchestrator.exchange.signing import HmacSigner, from_pem

API_KEY = "BINANCE_API_KEY"
API_SECRET = "BINANCE_API_SECRET"
PRIVATE_KEY_FILE = "BINANCE_PRIVATE_KEY_FILE"
PASSPHRASE = "BINANCE_PRIVATE_KEY_PASSPHRASE"


@dataclass(frozen=True)
class CredentialVariables:
    """The names of the environment variables that hold one master account's credentials.
    A variable left None is not read. `where` says which account of which plan names them
    (e.g. "account fund2 (plans/desk.yaml:4:5)"), for error messages."""

    api_key: str = API_KEY
    secret: str | None = API_SECRET
    private_key_file: str | None = PRIVATE_KEY_FILE
    passphrase: str | None = PASSPHRASE
    where: str = ""

    def how(self) -> str:
        choices = " or ".join(
            f"{name} ({what})"
            for name, what in (
                (self.secret, "HMAC secret"),
                (self.private_key_file, "path to the Ed25519/RSA private key PEM"),
            )
            if name
        )
        return f"set {self.api_key} and {choices}"


DEFAULT_VARIABLES = CredentialVariables()


def master_signer_from_env(
    environ: Mapping[str, str] = os.environ, variables: CredentialVariables = DEFAULT_VARIABLES
) -> Signer:
    """The signer of a master account, from the environment variables `variables` names.

    Raises CredentialsError when the variables are missing, contradictory, or the key file
    cannot be used.
    """
    names = variables
    api_key = _get(environ, names.api_key)
    secret = _get(environ, names.secret)
    key_file = _get(environ, names.private_key_file)
    passphrase = _get(environ, names.passphrase)
    if api_key is None:
        raise _error(names, f"{names.api_key} is not set", names.how())
    if secret is not None and key_file is not None:
        raise _error(
            names,
            f"both {names.secret} and {names.private_key_file} are set",
            f"unset one: {names.secret} for an HMAC key, {names.private_key_file} for Ed25519/RSA",
        )
    if secret is not None:
        if passphrase is not None:
            raise _error(
                names,
                f"{names.passphrase} is set but {names.private_key_file or 'no key file'} is not",
                f"the passphrase only applies to a private key file; unset {names.passphrase}",
            )
        return HmacSigner(api_key, SecretStr(secret))
    if key_file is not None:
        return _signer_from_file(api_key, Path(key_file), passphrase, names)
    named = [name for name in (names.secret, names.private_key_file) if name]
    missing = f"neither {' nor '.join(named)}" if len(named) > 1 else f"not {named[0]}"
    raise _error(names, f"{names.api_key} is set but {missing}", names.how())


def _error(names: CredentialVariables, message: str, hint: str) -> CredentialsError:
    where = f"{names.where}: " if names.where else ""
    return CredentialsError(where + message, hint=hint)


def _signer_from_file(
    api_key: str, path: Path, passphrase: str | None, names: CredentialVariables
) -> Signer:
    variable = names.private_key_file
    try:
        pem = SecretStr(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(
            names,
            f"{variable} points to a file that cannot be read ({type(exc).__name__})",
            f"check that the path in {variable} exists and is readable by this user",
        ) from None
    try:
        return from_pem(api_key, pem, passphrase)
    except CredentialsError as exc:
        raise _error(
            names,
            f"the key in {variable} is unusable: {exc.message}",
            f"{exc.hint + '; ' if exc.hint else ''}the passphrase comes from "
            f"{names.passphrase or 'no variable (this account names no passphrase_env)'}",
        ) from None


def _get(environ: Mapping[str, str], name: str | None) -> str | None:
    """The variable's value with surrounding whitespace removed; None when unset or blank
    (or when no variable is named)."""
    if name is None:
        return None
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()
