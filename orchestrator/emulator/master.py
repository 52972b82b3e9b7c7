"""The master account's API key: from the environment, from the data file, or generated."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from orchestrator.emulator.accounts import FLAGS, HMAC, ApiKey, random_token
from orchestrator.emulator.signing import public_pem_of_private_key


class MasterKeyError(Exception):
    """BINANCE_* variables are set but unusable."""


def hmac_master(api_key: str, secret: str, *, create_time: int = 0) -> ApiKey:
    return _with_master_flags(
        ApiKey(api_key, HMAC, "master", secret=secret, create_time=create_time)
    )


def public_key_master(api_key: str, private_key_pem: bytes, *, create_time: int = 0) -> ApiKey:
    """A master registered with the public half of an Ed25519/RSA private key."""
    key_type, public_pem = public_pem_of_private_key(private_key_pem)
    return _with_master_flags(
        ApiKey(api_key, key_type, "master", public_key=public_pem, create_time=create_time)
    )


def generate_master(create_time: int) -> ApiKey:
    return hmac_master(random_token(64), random_token(64), create_time=create_time)


def master_from_env(environ: Mapping[str, str] | None = None) -> ApiKey | None:
    """BINANCE_API_KEY with BINANCE_API_SECRET (HMAC) or BINANCE_PRIVATE_KEY_FILE; else None."""
    env = os.environ if environ is None else environ
    api_key = env.get("BINANCE_API_KEY")
    if not api_key:
        return None
    if env.get("BINANCE_API_SECRET"):
        return hmac_master(api_key, env["BINANCE_API_SECRET"])
    key_file = env.get("BINANCE_PRIVATE_KEY_FILE")
    if not key_file:
        raise MasterKeyError(
            "BINANCE_API_KEY is set without BINANCE_API_SECRET or BINANCE_PRIVATE_KEY_FILE"
        )
    try:
        return public_key_master(api_key, Path(key_file).expanduser().read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise MasterKeyError(f"cannot use BINANCE_PRIVATE_KEY_FILE {key_file}: {exc}") from None


def restrict(master: ApiKey, ips: Iterable[str]) -> ApiKey:
    """Give the master an IP whitelist (status 2) when `ips` is not empty."""
    ips = list(ips)
    if ips:
        master.status, master.ip_list = 2, ips
    return master


def without_trading(master: ApiKey) -> ApiKey:
    """The master without "Enable Spot & Margin Trading": Binance then refuses it the key and
    whitelist writes (-2015)."""
    master.flags["canTrade"] = False
    return master


#: the web UI's name of each permission a key's flags grant.
PERMISSION_NAMES: dict[str, str] = {
    "canTrade": "Enable Spot & Margin Trading",
    "canMarginLoanRepay": "Enable Margin Loan, Repay & Transfer",
    "canFuturesTrade": "Enable Futures",
    "canUniversalTransfer": "Permits Universal Transfer",
    "canVanillaOptions": "Enable European Options",
}


def master_permissions(master: ApiKey) -> list[str]:
    """The master's permissions as Binance's API Management page names them."""
    granted = [name for flag, name in PERMISSION_NAMES.items() if master.flags.get(flag)]
    withdrawals = ["Enable Withdrawals"] if master.can_withdraw else []
    return ["Enable Reading", *granted, *withdrawals]


def _with_master_flags(key: ApiKey) -> ApiKey:
    """The master can read, trade and transfer; withdrawals stay off as on a fresh API key."""
    key.flags = dict.fromkeys(FLAGS, False) | {"canTrade": True, "canUniversalTransfer": True}
    return key
