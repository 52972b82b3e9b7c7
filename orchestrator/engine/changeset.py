"""The changeset: the actions that take live to desired, and the findings on the way.

A changeset is plain data. `plan --out` saves it as JSON together with what it was computed
from (plan hash, live fingerprint, state serial), so that `apply` runs exactly it or refuses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import Enum

from orchestrator.exchange.models import Permission, Permissions

CHANGESET_FORMAT_VERSION = 1


class ActionKind(str, Enum):
    CREATE_SUBACCOUNT = "create_subaccount"
    CREATE_KEY = "create"
    UPDATE_PERMISSIONS = "update_permissions"
    UPDATE_IPS = "update_ips"
    ROTATE = "rotate"
    DELETE_KEY = "delete"


class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True)
class Action:
    """One step of a changeset. Which fields matter depends on `kind`.

    `email` is None for keys of a sub-account that this same changeset creates; the executor
    fills it in once the sub-account exists. `generation` is the generation a create or
    rotate makes.
    """

    kind: ActionKind
    subaccount: str
    label: str | None = None
    email: str | None = None
    virtual: str | None = None
    api_key: str | None = None
    api_name: str | None = None
    generation: int | None = None
    permissions: Permissions = frozenset()
    previous_permissions: Permissions = frozenset()
    ips: tuple[str, ...] = ()
    ips_add: tuple[str, ...] = ()
    ips_remove: tuple[str, ...] = ()
    unrestrict: bool = False
    key_type: str | None = None
    sink: str | None = None
    grace_s: float = 0.0
    verify: bool = False
    reason: str = ""
    security: bool = False

    @property
    def address(self) -> str:
        """`sub/label` for keys (`sub/apiName` for keys not in the plan), `sub` otherwise."""
        name = self.label or self.api_name
        return f"{self.subaccount}/{name}" if name else self.subaccount

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in _ACTION_FIELDS}  # asdict deep-copies
        data["kind"] = self.kind.value
        data["permissions"] = sorted(p.value for p in self.permissions)
        data["previous_permissions"] = sorted(p.value for p in self.previous_permissions)
        for name in ("ips", "ips_add", "ips_remove"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Action:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown action fields {sorted(unknown)}")
        values = dict(data)
        values["kind"] = ActionKind(values["kind"])
        for name in ("permissions", "previous_permissions"):
            values[name] = frozenset(Permission(p) for p in values.get(name, ()))
        for name in ("ips", "ips_add", "ips_remove"):
            values[name] = tuple(values.get(name, ()))
        return cls(**values)


_ACTION_FIELDS = fields(Action)


@dataclass(frozen=True)
class Finding:
    """Something the user should know that the changeset does not (or not only) fix."""

    kind: str  # unmanaged | widened | missing_subaccount | ...
    address: str
    message: str
    severity: Severity
    api_key: str | None = None
    fix: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        return cls(**{**data, "severity": Severity(data["severity"])})


@dataclass(frozen=True)
class Changeset:
    plan_name: str
    actions: tuple[Action, ...]
    findings: tuple[Finding, ...] = ()
    plan_hash: str = ""
    live_fingerprint: str = ""
    state_serial: int = 0
    state_lineage: str | None = None
    created_at: str = ""
    targets: tuple[str, ...] = field(default=())

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """Findings that make the plan impossible to apply (e.g. a sub-account not found)."""
        return tuple(f for f in self.findings if f.kind == "missing_subaccount")

    def counts(self) -> dict[str, int]:
        tally = {"create": 0, "update": 0, "rotate": 0, "delete": 0}
        for action in self.actions:
            tally[_COUNT_BUCKET[action.kind]] += 1
        return tally

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": CHANGESET_FORMAT_VERSION,
                "plan_name": self.plan_name,
                "plan_hash": self.plan_hash,
                "live_fingerprint": self.live_fingerprint,
                "state_serial": self.state_serial,
                "state_lineage": self.state_lineage,
                "created_at": self.created_at,
                "targets": list(self.targets),
                "actions": [a.to_dict() for a in self.actions],
                "findings": [f.to_dict() for f in self.findings],
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Changeset:
        """Parse a saved changeset; any malformation raises ValueError with what is wrong."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict) or data.get("format") != CHANGESET_FORMAT_VERSION:
            raise ValueError(
                f"not a changeset of format {CHANGESET_FORMAT_VERSION} (write it with plan --out)"
            )
        try:
            return cls(
                plan_name=str(data["plan_name"]),
                plan_hash=str(data["plan_hash"]),
                live_fingerprint=str(data["live_fingerprint"]),
                state_serial=int(data["state_serial"]),
                state_lineage=data.get("state_lineage"),
                created_at=str(data.get("created_at", "")),
                targets=tuple(data.get("targets", ())),
                actions=tuple(Action.from_dict(a) for a in data["actions"]),
                findings=tuple(Finding.from_dict(f) for f in data["findings"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed changeset: {exc!r}") from None


_COUNT_BUCKET = {
    ActionKind.CREATE_SUBACCOUNT: "create",
    ActionKind.CREATE_KEY: "create",
    ActionKind.UPDATE_PERMISSIONS: "update",
    ActionKind.UPDATE_IPS: "update",
    ActionKind.ROTATE: "rotate",
    ActionKind.DELETE_KEY: "delete",
}
