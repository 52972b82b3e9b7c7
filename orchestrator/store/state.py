"""The state file's schema: what the orchestrator knows it made. Never holds a secret.

`state/<plan>.state.json`. Keys are addressed `<sub-account name>/<label>`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

STATE_FORMAT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetiredKey(_Model):
    """A previous generation kept alive after a rotation until `delete_after`."""

    api_key: str
    api_name: str
    generation: int
    retired_at: datetime
    delete_after: datetime


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


class SubaccountRecord(_Model):
    name: str
    email: str
    virtual: bool = False


class State(_Model):
    version: int = STATE_FORMAT_VERSION
    lineage: str
    serial: int = 0
    plan: str
    subaccounts: dict[str, SubaccountRecord] = Field(default_factory=dict)
    keys: dict[str, KeyRecord] = Field(default_factory=dict)
