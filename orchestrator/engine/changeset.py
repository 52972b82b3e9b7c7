"""The changeset: the actions that take live to desired, and the findings on the way.

A changeset is plain data. `plan --out` saves it as JSON together with what it was computed
from (plan hash, live fingerprint, state serial), so that `apply` runs exactly it or refuses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from functools import lru_cache
from typing import Any, ClassVar

from orchestrator.domain.model import KeyType
from orchestrator.domain.permissions import Permission, Permissions

CHANGESET_FORMAT_VERSION = 2
#: findings that make a plan impossible to apply.
BLOCKING_FINDINGS = ("missing_subaccount", "shared_subaccount")


class ActionKind(str, Enum):
    CREATE_SUBACCOUNT = "create_subaccount"
    CREATE_KEY = "create"
    UPDATE_PERMISSIONS = "update_permissions"
    UPDATE_IPS = "update_ips"
    ROTATE = "rotate"
    DELETE_KEY = "delete"
    RECONCILE = "reconcile"
    RENAME = "rename"
    RELOAD = "reload"
    MOVE_MATERIAL = "move_material"


class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class _Change:
    """Fields and behaviour every kind of change shares; not a change itself."""

    kind: ClassVar[ActionKind]
    subaccount: str
    reason: str
    security: bool

    @property
    def address(self) -> str:
        """`sub/label` for keys (`sub/apiName` for keys not in the plan), `sub` otherwise."""
        name = getattr(self, "label", None) or getattr(self, "api_name", None)
        return f"{self.subaccount}/{name}" if name else self.subaccount

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind.value}
        values = vars(self)
        for name in _field_names(type(self)):
            value = values[name]
            if type(value) in _AS_IS:
                pass
            elif isinstance(value, frozenset):
                value = list(_sorted_values(value))
            elif isinstance(value, tuple):
                value = list(value)
            data[name] = value
        return data


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
#: field values written as they are, told by exact type (one lookup instead of three checks)
_AS_IS = frozenset({str, int, float, bool, type(None)})


@lru_cache(maxsize=256)
def _sorted_values(members: frozenset) -> tuple[str, ...]:
    """A set of enum members (permissions) as their sorted values; a plan has few such sets."""
    return tuple(sorted(p.value for p in members))


def _field_names(cls: Any) -> tuple[str, ...]:
    """A change class's field names, looked up once per class."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True)
class CreateSubaccount(_Change):
    """Create the virtual sub-account `virtual` that the plan calls `subaccount`."""

    kind: ClassVar[ActionKind] = ActionKind.CREATE_SUBACCOUNT
    subaccount: str
    virtual: str
    reason: str = ""
    security: bool = False


@dataclass(frozen=True)
class CreateKey(_Change):
    """Make generation `generation` of a planned key, its material stored first.

    `email` is None for keys of a sub-account that this same changeset creates; the executor
    fills it in once the sub-account exists.
    """

    kind: ClassVar[ActionKind] = ActionKind.CREATE_KEY
    subaccount: str
    label: str
    email: str | None
    api_name: str
    generation: int
    permissions: Permissions
    ips: tuple[str, ...]
    key_type: KeyType
    sink: str
    verify: bool = False
    retire: tuple[tuple[str, str], ...] = ()  # live generations (api key, apiName) to keep
    grace_s: float = 0.0  # for `grace_s` from now, then delete
    reload: tuple[str, ...] = ()  # the key's reload and check steps (see Reload)
    check: tuple[str, ...] = ()
    reload_timeout_s: float = 30.0
    reason: str = ""
    security: bool = False


@dataclass(frozen=True)
class UpdatePermissions(_Change):
    """Set the live key's permissions to the planned ones."""

    kind: ClassVar[ActionKind] = ActionKind.UPDATE_PERMISSIONS
    subaccount: str
    label: str
    email: str
    api_key: str
    api_name: str
    permissions: Permissions
    previous_permissions: Permissions
    key_type: KeyType
    sink: str
    reason: str = ""
    security: bool = False


@dataclass(frozen=True)
class UpdateIps(_Change):
    """Take the live key's whitelist to the planned `ips` (or lift it: `unrestrict`)."""

    kind: ClassVar[ActionKind] = ActionKind.UPDATE_IPS
    subaccount: str
    label: str
    email: str
    api_key: str
    api_name: str
    ips: tuple[str, ...]
    ips_add: tuple[str, ...]
    ips_remove: tuple[str, ...]
    unrestrict: bool
    permissions: Permissions
    key_type: KeyType
    sink: str
    reason: str = ""
    security: bool = False


@dataclass(frozen=True)
class Rotate(_Change):
    """Replace the live key `api_key` (apiName `replaced_name`) with generation `generation`
    (apiName `api_name`); the replaced key lives on for `grace_s` seconds."""

    kind: ClassVar[ActionKind] = ActionKind.ROTATE
    subaccount: str
    label: str
    email: str
    api_key: str
    replaced_name: str
    api_name: str
    generation: int
    permissions: Permissions
    ips: tuple[str, ...]
    key_type: KeyType
    sink: str
    grace_s: float
    verify: bool = False
    reload: tuple[str, ...] = ()  # the key's reload and check steps (see Reload)
    check: tuple[str, ...] = ()
    reload_timeout_s: float = 30.0
    reason: str = ""
    security: bool = False


@dataclass(frozen=True)
class Reload(_Change):
    """Run the label's reload and check steps for its current key `api_key`, so that bots
    are seen to use it before any older generation goes. Once both succeed, the older
    generations' grace starts; those in `release` (api key, apiName: live, their material
    kept, their grace over) are deleted at once when `grace_s` is 0, by a later run
    otherwise. While the steps fail, every older generation stays live."""

    kind: ClassVar[ActionKind] = ActionKind.RELOAD
    subaccount: str
    label: str
    email: str
    api_key: str
    api_name: str
    generation: int
    sink: str
    reload: tuple[str, ...]
    check: tuple[str, ...]
    reload_timeout_s: float
    grace_s: float
    release: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    security: bool = False


@dataclass(frozen=True)
class DeleteKey(_Change):
    """Delete a live key: a generation of a planned `label`, or (label None) a key the plan
    does not name."""

    kind: ClassVar[ActionKind] = ActionKind.DELETE_KEY
    subaccount: str
    label: str | None
    email: str
    api_key: str
    api_name: str
    permissions: Permissions
    reason: str = ""
    security: bool = False


@dataclass(frozen=True)
class Reconcile(_Change):
    """Bring state and sinks in line with the evidence for one label, with no call to the
    exchange: record the key bots read as current (`adopt_*`), start the grace period of
    other live generations whose material is kept (`retire`: api key and apiName), forget
    recorded generations that are gone (`forget`), destroy the material of keys that are not
    live (`destroy`)."""

    kind: ClassVar[ActionKind] = ActionKind.RECONCILE
    subaccount: str
    label: str
    email: str
    key_type: KeyType
    sink: str
    grace_s: float
    adopt_api_key: str | None = None
    adopt_api_name: str = ""
    adopt_permissions: Permissions = frozenset()
    adopt_ips: tuple[str, ...] | None = None  # None: the key accepts any IP
    adopt_created_ms: int = 0
    retire: tuple[tuple[str, str], ...] = ()
    forget: tuple[str, ...] = ()
    destroy: tuple[str, ...] = ()
    reason: str = ""
    security: bool = False


@dataclass(frozen=True)
class Rename(_Change):
    """A label renamed in the plan (`moved:`): its keys, state record and sink material are
    kept and filed under the new label. apiNames keep the old label until the next rotation:
    Binance cannot rename a key."""

    kind: ClassVar[ActionKind] = ActionKind.RENAME
    subaccount: str
    label: str
    from_label: str
    sink: str
    reason: str = ""
    security: bool = False

    @property
    def from_address(self) -> str:
        return f"{self.subaccount}/{self.from_label}"


@dataclass(frozen=True)
class MoveMaterial(_Change):
    """The key's `secrets:` changed: its material goes from `from_sink` to `sink`, no new key.

    `keep` (api keys, ascending by generation, the bot-facing one `current` last) is what is
    copied: every live generation `from_sink` holds. Each copy is written to `sink` and read
    back before anything of `from_sink` goes; then every generation's material there is
    destroyed, and state records the new sink last, so an interrupted move is planned again
    from what the two sinks hold."""

    kind: ClassVar[ActionKind] = ActionKind.MOVE_MATERIAL
    subaccount: str
    label: str
    from_sink: str
    sink: str
    current: str
    keep: tuple[str, ...] = ()
    reason: str = ""
    security: bool = False


Action = (
    CreateSubaccount
    | CreateKey
    | UpdatePermissions
    | UpdateIps
    | Rotate
    | DeleteKey
    | Reconcile
    | Rename
    | Reload
    | MoveMaterial
)
_BY_KIND: dict[str, type[Action]] = {
    cls.kind.value: cls
    for cls in (
        CreateSubaccount,
        CreateKey,
        UpdatePermissions,
        UpdateIps,
        Rotate,
        DeleteKey,
        Reconcile,
        Rename,
        Reload,
        MoveMaterial,
    )
}


def action_from_dict(data: dict[str, Any]) -> Action:
    """The change a `to_dict` wrote; ValueError naming what is wrong otherwise."""
    values = dict(data)
    kind = values.pop("kind", None)
    cls = _BY_KIND.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown change kind {kind!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)} for a {kind} change")
    for name in ("permissions", "previous_permissions", "adopt_permissions"):
        if name in values:
            values[name] = frozenset(Permission(p) for p in values[name])
    for name in ("ips", "ips_add", "ips_remove", "forget", "destroy", "reload", "check", "keep"):
        if name in values:
            values[name] = tuple(values[name])
    if values.get("adopt_ips") is not None:
        values["adopt_ips"] = tuple(values["adopt_ips"])
    for name in ("retire", "release"):
        if name in values:
            values[name] = tuple((str(key), str(api_name)) for key, api_name in values[name])
    return cls(**values)


@dataclass(frozen=True)
class Finding:
    """Something the user should know that the changeset does not (or not only) fix."""

    kind: str  # unmanaged | widened | missing_subaccount | ...
    address: str
    message: str
    severity: Severity
    api_key: str | None = None
    fix: str = ""
    risky: bool = False  # an unmanaged key that can trade or move funds

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
    def risky_unmanaged(self) -> tuple[Finding, ...]:
        """Live keys no plan manages that can trade or move funds: `plan --detailed-exitcode`
        says so (exit 3) even when nothing is to change."""
        return tuple(f for f in self.findings if f.kind == "unmanaged" and f.risky)

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """Findings that make the plan impossible to apply (e.g. a sub-account not found)."""
        return tuple(f for f in self.findings if f.kind in BLOCKING_FINDINGS)

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
        version = data.get("format") if isinstance(data, dict) else None
        if isinstance(version, int) and version < CHANGESET_FORMAT_VERSION:
            raise ValueError(
                f"it was saved by an older orchestrator (format {version}, this one reads "
                f"{CHANGESET_FORMAT_VERSION}); run `orchestrator plan --out FILE` again"
            )
        if version != CHANGESET_FORMAT_VERSION:
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
                actions=tuple(action_from_dict(a) for a in data["actions"]),
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
    ActionKind.RECONCILE: "update",
    ActionKind.RENAME: "update",
    ActionKind.RELOAD: "update",
    ActionKind.MOVE_MATERIAL: "update",
}
