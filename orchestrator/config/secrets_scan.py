"""Finds key material written into a plan. A plan is reviewed and committed: it never holds one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from orchestrator.config.source import join_path

SECRET_FIELDS = frozenset(
    {
        "secret",
        "api_secret",
        "secret_key",
        "private_key",
        "api_key",
        "password",
        "apikey",
        "apisecret",
        "secretkey",
        "privatekey",
        "passphrase",
    }
)
_BINANCE_KEY = re.compile(r"^[A-Za-z0-9]{64}$")
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")

SECRET_HINT = (
    "never write a key or secret in a plan: master credentials come from the environment "
    "(BINANCE_API_KEY with BINANCE_API_SECRET or BINANCE_PRIVATE_KEY_FILE) and new key material "
    "goes to a `secrets:` sink; if this value was ever committed or shared, delete that key on "
    "Binance"
)


@dataclass
class Finding:
    path: str
    message: str
    on_key: bool  # the field name is the problem, so point at the key, not its value


@dataclass
class SecretScan:
    findings: list[Finding] = field(default_factory=list)
    literals: set[str] = field(default_factory=set)  # values to scrub from every message

    def paths(self) -> set[str]:
        return {f.path for f in self.findings}


def scan_secrets(data: Any) -> SecretScan:
    scan = SecretScan()
    _walk(data, "", scan)
    return scan


def _walk(value: Any, path: str, scan: SecretScan) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            child_path = join_path(path, key)
            if str(key).lower().replace("-", "_") in SECRET_FIELDS:
                scan.findings.append(
                    Finding(child_path, f"field {key!r} would hold a credential", on_key=True)
                )
                _remember(child, scan)
                continue
            _walk(child, child_path, scan)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _walk(child, join_path(path, index), scan)
    elif isinstance(value, str):
        _check_text(value, path, scan)


def _check_text(text: str, path: str, scan: SecretScan) -> None:
    if _PEM_PRIVATE.search(text):
        scan.findings.append(Finding(path, "a PEM private key is written in the plan", False))
        scan.literals.add(text)
    elif _BINANCE_KEY.fullmatch(text.strip()):
        scan.findings.append(
            Finding(
                path,
                "this value looks like a Binance API key or secret (64 letters and digits)",
                False,
            )
        )
        scan.literals.add(text)


def _remember(value: Any, scan: SecretScan) -> None:
    if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
        scan.literals.add(str(value))


def scrub(text: str, literals: set[str]) -> str:
    for literal in sorted(literals, key=len, reverse=True):
        if len(literal) >= 4:
            text = text.replace(literal, "***")
    return text
