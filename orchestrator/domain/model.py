"""The values the diff works on: what the plan wants and what the exchange has.

`Desired` is built from a validated plan file by orchestrator.config; `Live` by refresh from
the exchange. Both are plain, immutable and free of I/O, so the diff can be a pure function.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Literal

from orchestrator.domain.permissions import Permissions

KeyType = Literal["ed25519", "hmac"]


@dataclass(frozen=True)
class DesiredKey:
    subaccount: str
    label: str
    permissions: Permissions
    ips: tuple[str, ...]  # sorted; empty means no IP restriction
    key_type: KeyType = "ed25519"
    rotate_after: timedelta | None = None
    grace: timedelta = timedelta(hours=1)
    sink: str = "file:secrets/"
    verify: bool = False
    reload: tuple[str, ...] = ()  # argv run once a new generation is in the sink
    check: tuple[str, ...] = ()  # argv that must succeed before older generations go
    reload_timeout: timedelta = timedelta(seconds=30)  # for each of reload and check
    owner: str | None = None  # the project id its apiName carries; None: a legacy name
    former_label: str | None = None  # the label it was renamed from (a `moved:` entry)
    takes_over: bool = False  # former_label's key is replaced, not kept (see diff.takeovers)

    @property
    def address(self) -> str:
        return f"{self.subaccount}/{self.label}"

    @property
    def switches(self) -> bool:
        """Whether bots must be seen to switch (reload, check) before older generations go."""
        return bool(self.reload or self.check)


@dataclass(frozen=True)
class DesiredSubaccount:
    """A sub-account of the plan: an existing one (`email`) or a virtual one to create."""

    name: str
    email: str | None = None
    virtual: str | None = None
    prune: bool = False
    keys: tuple[DesiredKey, ...] = ()
    moved: tuple[tuple[str, str], ...] = ()  # (old label, new label): the key is kept


@dataclass(frozen=True)
class Desired:
    plan_name: str
    subaccounts: tuple[DesiredSubaccount, ...]
    project: str | None = None  # the id that owns the plan's keys and names its state

    def keys(self) -> list[DesiredKey]:
        return [k for s in self.subaccounts for k in s.keys]


@dataclass(frozen=True)
class SubAccount:
    email: str
    sub_user_id: int | None = None
    is_freeze: bool = False
    create_time: int = 0
    is_managed: bool = False
    is_asset_management: bool = False


@dataclass(frozen=True)
class LiveKey:
    """A key as the exchange has it: the list row joined with its IP restriction."""

    email: str
    api_name: str
    api_key: str
    permissions: Permissions
    restricted: bool
    ips: tuple[str, ...]  # sorted
    created_ms: int = 0


@dataclass(frozen=True)
class SinkHolding:
    """The material one key's sink holds, by api key: which one bots read (`current`), and
    the generation of every one it keeps (current included)."""

    current: str | None = None
    generations: dict[str, int] = field(default_factory=dict)
    under_former_label: bool = False  # some of it is still filed under the label's old name
    unreadable: str = ""  # why the sink could not be read; then it is no evidence at all
    #: what the sink state last recorded for the key holds, when the plan now names another
    #: (`secrets:` changed): the material a move copies from.
    moved_from: SinkHolding | None = None

    def holds(self, api_key: str) -> bool:
        return api_key in self.generations


@dataclass(frozen=True)
class Live:
    """The live account: every sub-account listed, and the keys of those the plan names;
    with what each planned key's sink holds, by address, where the sinks were read."""

    subaccounts: tuple[SubAccount, ...]
    keys: dict[str, tuple[LiveKey, ...]] = field(default_factory=dict)  # by sub-account email
    material: dict[str, SinkHolding] = field(default_factory=dict)  # by `sub/label`

    @cached_property
    def emails(self) -> frozenset[str]:
        """The listed sub-accounts' emails (looked up once per planned sub-account)."""
        return frozenset(s.email for s in self.subaccounts)

    def fingerprint(self) -> str:
        """A hash of everything the diff reads, to refuse a saved changeset when live moved."""
        canon = {
            "subaccounts": sorted(s.email for s in self.subaccounts),
            "keys": {
                email: sorted(
                    [
                        k.api_key,
                        k.api_name,
                        sorted(p.value for p in k.permissions),
                        k.restricted,
                        list(k.ips),
                    ]
                    for k in keys
                )
                for email, keys in sorted(self.keys.items())
            },
            "material": {
                address: _canonical(holding) for address, holding in sorted(self.material.items())
            },
        }
        return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()


def _canonical(holding: SinkHolding) -> list:
    found: list = [holding.current, sorted(holding.generations.items())]
    if holding.moved_from is not None:
        found.append(_canonical(holding.moved_from))
    return found
