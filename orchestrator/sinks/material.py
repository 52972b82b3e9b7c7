"""Key material: the one object that carries a secret, as a SecretStr from the start."""

from __future__ import annotations

import dataclasses
import hmac
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.dataclasses import dataclass

KeyType = Literal["hmac", "ed25519"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")


def split_address(address: str) -> tuple[str, str]:
    """`quant/QuantBot-BTC` -> ("quant", "QuantBot-BTC"), refusing anything path-like."""
    parts = address.split("/")
    if len(parts) != 2 or not all(_NAME.fullmatch(part) for part in parts):
        raise ValueError(f"{address!r} is not a key address of the form <sub-account>/<label>")
    return parts[0], parts[1]


@dataclass(frozen=True, kw_only=True)
class KeyMaterial:
    """An API key and its secret: the HMAC secret, or the Ed25519 private key PEM.

    A validated, frozen dataclass, so `dataclasses.replace(m, api_key=...)` works. A plain
    str given as `secret` becomes a SecretStr. `api_key` is None (or "" on input) for an
    Ed25519 key whose private key is stored as pending before the public key is registered;
    write it again with the api key once Binance returns it. `address` defaults to
    "<subaccount>/<label>" and must equal it when given.
    """

    subaccount: str
    label: str
    api_key: str | None
    key_type: KeyType
    secret: SecretStr
    created_at: datetime
    generation: int = Field(ge=0)
    address: str = ""

    @field_validator("api_key")
    @classmethod
    def _empty_is_unregistered(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _consistent_address(self) -> KeyMaterial:
        expected = f"{self.subaccount}/{self.label}"
        split_address(expected)
        if self.address and self.address != expected:
            raise ValueError(f"address {self.address!r} does not match {expected!r}")
        object.__setattr__(self, "address", expected)
        return self

    def __str__(self) -> str:
        return f"{self.address} generation {self.generation} ({self.key_type})"


def same_key(one: KeyMaterial, other: KeyMaterial) -> bool:
    """Whether two stored copies are of one key: the same api key and generation."""
    return one.api_key == other.api_key and one.generation == other.generation


def same_material(one: KeyMaterial, other: KeyMaterial) -> bool:
    """Whether two stored copies hold the same key and secret, whatever address they are filed
    under (an Ed25519 pending key has no api key yet: only its private key tells two apart)."""
    return (
        same_key(one, other)
        and one.key_type == other.key_type
        and hmac.compare_digest(
            one.secret.get_secret_value().encode(), other.secret.get_secret_value().encode()
        )
    )


def readdressed(material: KeyMaterial, address: str) -> KeyMaterial:
    """The same material filed under another address (a renamed label)."""
    subaccount, label = split_address(address)
    return dataclasses.replace(material, subaccount=subaccount, label=label, address=address)


def held_in_order(found: Iterable[KeyMaterial], current: KeyMaterial | None) -> list[KeyMaterial]:
    """The held generations among `found`: one copy per key, never the current one, ascending
    by generation."""
    kept: dict[tuple[int, str], KeyMaterial] = {}
    for material in found:
        if current is not None and same_key(material, current):
            continue
        kept.setdefault((material.generation, material.api_key or ""), material)
    return [kept[key] for key in sorted(kept)]
