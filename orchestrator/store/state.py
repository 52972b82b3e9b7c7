"""The state file's schema: what the orchestrator knows it made. Never holds a secret.

`state/<project>.state.json`. Keys are addressed `<sub-account name>/<label>`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

STATE_FORMAT_VERSION = 1

#: serials stay below 2**53 so that every JSON reader (JavaScript included) reads them exactly.
MAX_SERIAL = 2**53

#: the shape of a Binance API key, as the exchange issues them.
API_KEY_SHAPE = re.compile(r"[A-Za-z0-9]{64}")

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetiredKey(_Model):
    """A previous generation kept alive after a rotation until `delete_after`."""

    api_key: str
    api_name: str
    generation: int
    retired_at: datetime
    delete_after: datetime


class SwitchRecord(_Model):
    """The last run of a key's reload/check steps, for generation `api_key`.

    Only `ok` for the label's current key lets older generations be deleted: a failure, a
    record for another generation, or none at all (a lost state) means the steps run again
    first. So state can only hold a delete back, never bring one forward."""

    api_key: str
    generation: int
    ok: bool
    at: datetime
    reason: str = ""  # why it failed, secret-free


class KeyRecord(_Model):
    subaccount: str
    email: str
    label: str
    api_key: str
    api_name: str
    generation: int
    key_type: str
    created_at: datetime
    permissions: list[str]
    ips: list[str]
    sink: str
    previous: list[RetiredKey] = Field(default_factory=list)
    switched: SwitchRecord | None = None  # the reload/check steps' last result

    def switched_to(self, api_key: str) -> bool:
        """Whether the reload/check steps succeeded for `api_key` as the current key."""
        return (
            self.switched is not None
            and self.switched.ok
            and self.switched.api_key == api_key == self.api_key
        )


class SubaccountRecord(_Model):
    name: str
    email: str
    virtual: bool = False


class AuditHead(_Model):
    """The audit log's last entry as of a state save. The log must still hold this entry,
    unchanged, at this place: a log cut short or rewritten no longer does."""

    seq: int
    hash: str
    offset: int  # where the entry's line starts, so a save can check it without a full read


class State(_Model):
    version: int = STATE_FORMAT_VERSION
    lineage: str
    serial: int = 0
    plan: str
    plan_file: str | None = None  # the plan file that owns this state, from the project dir
    subaccounts: dict[str, SubaccountRecord] = Field(default_factory=dict)
    keys: dict[str, KeyRecord] = Field(default_factory=dict)
    audit_head: AuditHead | None = None


def load_problems(state: State) -> list[str]:
    """What is wrong with a state that parsed: values of the right type that no orchestrator
    writes (a negative serial, a made-up api key...). One `field: problem` per finding."""
    problems = []
    if state.version != STATE_FORMAT_VERSION:
        problems.append(
            f"version: {state.version} is not a state format version (this orchestrator writes "
            f"{STATE_FORMAT_VERSION})"
        )
    if not 0 <= state.serial < MAX_SERIAL:
        problems.append(f"serial: {state.serial} is outside 0 to 2**53 - 1")
    if not _is_uuid(state.lineage):
        problems.append("lineage: not a lineage id (a UUID such as new states get)")
    for name, sub in state.subaccounts.items():
        problems += _email_problems(f"subaccounts.{name}.email", sub.email)
    for address, record in state.keys.items():
        problems += list(_key_problems(f"keys.{address}", record))
    if state.audit_head is not None:
        problems += _audit_head_problems(state.audit_head)
    return problems


def _audit_head_problems(head: AuditHead) -> list[str]:
    if head.seq >= 1 and head.offset >= 0 and _SHA256_HEX.fullmatch(head.hash):
        return []
    return ["audit_head: not an audit log entry (seq from 1, a sha256 hash, an offset)"]


def _key_problems(where: str, record: KeyRecord) -> Iterator[str]:
    yield from _email_problems(f"{where}.email", record.email)
    yield from _api_key_problems(f"{where}.api_key", record.api_key)
    yield from _generation_problems(f"{where}.generation", record.generation)
    yield from _timestamp_problems(f"{where}.created_at", record.created_at)
    if record.switched is not None:
        yield from _api_key_problems(f"{where}.switched.api_key", record.switched.api_key)
        yield from _timestamp_problems(f"{where}.switched.at", record.switched.at)
    for index, old in enumerate(record.previous):
        at = f"{where}.previous[{index}]"
        yield from _api_key_problems(f"{at}.api_key", old.api_key)
        yield from _generation_problems(f"{at}.generation", old.generation)
        yield from _timestamp_problems(f"{at}.retired_at", old.retired_at)
        yield from _timestamp_problems(f"{at}.delete_after", old.delete_after)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _email_problems(where: str, email: str) -> list[str]:
    local, at, domain = email.partition("@")
    return [] if local and at and domain else [f"{where}: not an email address"]


def _api_key_problems(where: str, api_key: str) -> list[str]:
    if API_KEY_SHAPE.fullmatch(api_key):
        return []
    return [f"{where}: not a Binance API key (64 letters and digits)"]


def _generation_problems(where: str, generation: int) -> list[str]:
    return [] if generation >= 1 else [f"{where}: {generation} is below 1"]


def _timestamp_problems(where: str, moment: datetime) -> list[str]:
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        return []
    return [f"{where}: a time without a timezone"]
