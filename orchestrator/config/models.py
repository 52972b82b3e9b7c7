"""The plan file's schema as pydantic models: types, allowed fields, per-value checks.

Rules that relate several values (duplicates, inheritance, whitelists of trading keys) live in
policy.py, which reports them with exact positions; the models check one value at a time.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from orchestrator.config.addresses import whitelist_problem
from orchestrator.config.durations import ACCEPTED_FORMS, DurationError, parse_duration
from orchestrator.config.profiles import (
    PERMISSION_NAMES,
    PROFILES,
    WITHDRAWALS,
    WITHDRAWALS_MESSAGE,
    valid_permissions,
    valid_profiles,
)
from orchestrator.domain.naming import LABEL_PATTERN, MAX_LABEL, PROJECT_PATTERN
from orchestrator.notify import DEFAULT_LEVEL, check_url

DEFAULT_BINANCE_ENDPOINT = "https://api.binance.com"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_RECV_WINDOW_MS = 60_000
SINK_KINDS = ("file", "dotenv", "vault")
_VAULT_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_ENV_NAME = ENV_NAME
_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def fail(message: str, hint: str) -> PydanticCustomError:
    """A validation error that carries our own message and fix (read back in schema_errors)."""
    return PydanticCustomError("plan_value", "{message}", {"message": message, "hint": hint})


def _duration(value: object) -> timedelta:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise fail(str(exc), f"write {ACCEPTED_FORMS}") from None


def _permission(name: str) -> str:
    if name == WITHDRAWALS:
        raise fail(WITHDRAWALS_MESSAGE, "remove `withdrawals` from the list")
    if name not in PERMISSION_NAMES:
        raise fail(f"unknown permission {name!r}", f"use some of: {valid_permissions()}")
    return name


def _profile(name: str) -> str:
    if name not in PROFILES:
        raise fail(f"unknown profile {name!r}", f"use one of: {valid_profiles()}")
    return name


def _ip(entry: str) -> str:
    problem = whitelist_problem(entry)
    if problem:
        raise fail(*problem)
    return entry


def _label(label: str) -> str:
    if len(label) > MAX_LABEL:
        raise fail(
            f"label is {len(label)} characters, longer than {MAX_LABEL}",
            f"shorten it to at most {MAX_LABEL} characters so that "
            "`orc-<project>.<label>-g<generation>` fits Binance's 64-character apiName",
        )
    if not LABEL_PATTERN.fullmatch(label):
        raise fail(
            f"label {label!r} has characters Binance's apiName would not keep",
            "use letters, digits, '-' and '_' only, starting with a letter or digit",
        )
    return label


def _project(project: str) -> str:
    if not PROJECT_PATTERN.fullmatch(project):
        raise fail(
            f"project id {project!r} is not 1 to 12 lowercase letters and digits",
            "e.g. project: quant1 (it is written into every key's apiName, so keep it short)",
        )
    return project


def _name(name: str) -> str:
    if not LABEL_PATTERN.fullmatch(name):
        raise fail(
            f"sub-account name {name!r} is not a simple name",
            "use letters, digits, '-' and '_' only (it appears in `name/label` addresses)",
        )
    return name


def _email(email: str) -> str:
    if not _EMAIL.fullmatch(email):
        raise fail(
            f"{email!r} is not an email address",
            "give the sub-account's email as Binance shows it, e.g. quant@example.com",
        )
    return email


def _account_name(name: str) -> str:
    if not ACCOUNT_NAME.match(name):
        raise fail(
            f"account name {name!r} is not 1 to 32 lowercase letters, digits, '-' or '_'",
            "e.g. name: fund2 (it names the account's state files: <project>@<account>)",
        )
    return name


def _variable(name: str) -> str:
    if not ENV_NAME.match(name):
        raise fail(
            f"{name!r} is not an environment variable name",
            "name the variable, not its value, e.g. FUND2_API_KEY (letters, digits, '_')",
        )
    return name


def _virtual(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]{1,32}", name):
        raise fail(
            f"virtual sub-account name {name!r} is not accepted",
            "use 1 to 32 letters and digits (Binance builds an email from it)",
        )
    return name


def _sink(spec: str) -> str:
    kind, sep, target = spec.partition(":")
    if not sep or kind not in SINK_KINDS:
        raise fail(
            f"{spec!r} is not a secrets sink",
            "write file:DIR, dotenv:PATH or vault:MOUNT/PATH, e.g. file:secrets/",
        )
    if not target.strip():
        raise fail(
            f"{spec!r} names no {'path' if kind != 'vault' else 'mount and path'}",
            f"write {kind}:{'MOUNT/PATH' if kind == 'vault' else 'PATH'}",
        )
    if kind == "vault" and not _VAULT_PATH.fullmatch(target):
        raise fail(
            f"{spec!r} is not vault:MOUNT/PATH",
            "name the KV v2 mount and a path under it, e.g. vault:secret/orchestrator",
        )
    return spec


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise fail(
            "the endpoint contains credentials",
            "remove them; master credentials come only from the environment",
        )
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise fail(f"{url!r} is not an http(s) URL", f"e.g. {DEFAULT_BINANCE_ENDPOINT}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise fail(
            f"{url!r} is plain http to a non-loopback host; requests and keys would "
            "travel unencrypted",
            "use https, or http://127.0.0.1:PORT for a local `emulator serve`",
        )
    if parts.query or parts.fragment:
        raise fail(f"{url!r} has a query or fragment", "give only scheme, host and port")
    return url.rstrip("/")


def _notify_url(url: str) -> str:
    problem = check_url(url)
    if problem:
        raise fail(
            problem,
            "write an apprise URL, e.g. json://hooks.example.com/orchestrator; keep URLs "
            "that carry a token in ORCHESTRATOR_NOTIFY rather than in the plan",
        )
    return url.strip()


def _schema(**schema) -> WithJsonSchema:
    return WithJsonSchema(schema)


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    _schema(
        anyOf=[{"type": "string", "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"}, {"const": 0}],
        description=f"A duration: {ACCEPTED_FORMS}.",
    ),
]
PermissionName = Annotated[
    StrictStr, AfterValidator(_permission), _schema(type="string", enum=list(PERMISSION_NAMES))
]
ProfileName = Annotated[
    StrictStr, AfterValidator(_profile), _schema(type="string", enum=list(PROFILES))
]
IPv4 = Annotated[
    StrictStr,
    AfterValidator(_ip),
    _schema(type="string", format="ipv4", description="A public IPv4 address."),
]
SinkSpec = Annotated[
    StrictStr,
    AfterValidator(_sink),
    _schema(
        type="string",
        pattern=r"^(file|dotenv|vault):.+",
        description="Where key material goes: file:DIR, dotenv:PATH or vault:MOUNT/PATH.",
    ),
]
Label = Annotated[
    StrictStr,
    AfterValidator(_label),
    _schema(type="string", pattern=LABEL_PATTERN.pattern, maxLength=MAX_LABEL),
]
NotifyUrl = Annotated[
    StrictStr,
    AfterValidator(_notify_url),
    _schema(type="string", description="An apprise URL, e.g. json://hooks.example.com/ops."),
]
NotifyLevel = Literal["low", "medium", "high", "critical"]  # notify.LEVELS
KeyType = Literal["ed25519", "hmac"]


def _argv(argv: list[str]) -> list[str]:
    if argv and not argv[0].strip():
        raise fail(
            "the command's program (its first word) is empty",
            'write the command as a list, program first, e.g. ["systemctl", "reload", "bot"]',
        )
    if any("\0" in word for word in argv):
        raise fail("a command word contains a NUL character", "remove it")
    return argv


Command = Annotated[
    list[StrictStr],
    AfterValidator(_argv),
    _schema(
        type="array",
        items={"type": "string"},
        description="A command as an argv list, program first, run without a shell; "
        "[] runs nothing.",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExchangeModel(_Strict):
    kind: Literal["sandbox", "binance"] = "sandbox"
    endpoint: (
        Annotated[StrictStr, AfterValidator(_endpoint), _schema(type="string", format="uri")] | None
    ) = None
    recv_window_ms: int | None = Field(default=None, ge=1, le=MAX_RECV_WINDOW_MS, strict=True)
    rate_window_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @field_validator("rate_window_s", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float | None):
            raise fail(f"expected a number of seconds, got {value!r}", "e.g. rate_window_s: 1.5")
        return value


def _env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        shown = f"{name!r} " if not re.search(r"[:=@/]", name) else ""
        raise fail(
            f"dsn_env {shown}is not the name of an environment variable",
            "name the variable that holds the DSN, e.g. dsn_env: ORCHESTRATOR_PG_DSN;"
            " the DSN itself never goes in the plan",
        )
    return name


def _schema_name(name: str) -> str:
    if not _SCHEMA_NAME.match(name):
        raise fail(
            f"schema {name!r} is not a simple PostgreSQL schema name",
            "use 1 to 63 lowercase letters, digits and '_', starting with a letter",
        )
    return name


class BackendModel(_Strict):
    """Where state, lock, journal and audit log live. The DSN comes from the environment."""

    kind: Literal["local", "postgres"] = "local"
    dsn_env: Annotated[StrictStr, AfterValidator(_env_name)] | None = None
    schema_: Annotated[StrictStr, AfterValidator(_schema_name)] | None = Field(
        default=None, alias="schema"
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _postgres_only(self) -> BackendModel:
        if self.kind == "local" and (self.dsn_env or self.schema_):
            raise fail(
                "dsn_env and schema are settings of the postgres backend",
                "write backend: {kind: postgres, dsn_env: NAME}, or remove them",
            )
        return self


class KeySettings(_Strict):
    """Settings a key may have and `defaults` may give to every key."""

    key_type: KeyType | None = None
    rotate_after: Duration | None = None
    grace: Duration | None = None
    secrets: SinkSpec | None = None
    ips: list[IPv4] | None = None
    permissions: list[PermissionName] | None = None
    profile: ProfileName | None = None
    verify: StrictBool | None = None
    reload: Command | None = None
    check: Command | None = None
    reload_timeout: Duration | None = None

    @field_validator("reload_timeout")
    @classmethod
    def _timeout(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise fail(
                "reload_timeout must be longer than 0s",
                "e.g. reload_timeout: 30s (how long each of reload and check may run)",
            )
        return value

    @field_validator("rotate_after")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise fail(
                "rotate_after must be longer than 0s",
                "e.g. rotate_after: 30d, or leave it out to never rotate",
            )
        return value


class DefaultsModel(KeySettings):
    pass


class KeyModel(KeySettings):
    label: Label
    ip_restriction: Literal["none"] | None = None
    reason: StrictStr | None = None


class MovedModel(_Strict):
    """A label renamed in the plan: the key made under `from` is kept as `to`'s key."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_label: Label = Field(alias="from")
    to_label: Label = Field(alias="to")


class SubaccountModel(_Strict):
    name: Annotated[StrictStr, AfterValidator(_name)]
    email: Annotated[StrictStr, AfterValidator(_email)] | None = None
    virtual: Annotated[StrictStr, AfterValidator(_virtual)] | None = None
    account: AccountName | None = None  # default: the first of the plan's `accounts`
    prune: StrictBool = False
    keys: list[KeyModel] = Field(default_factory=list)
    moved: list[MovedModel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _moves_name_labels(self) -> SubaccountModel:
        labels = {key.label for key in self.keys}
        seen: set[str] = set()
        for move in self.moved:
            if move.to_label not in labels:
                raise fail(
                    f"moved: {move.to_label} is not a key of {self.name}",
                    f"`to:` names the new label, which must be one of the keys: "
                    f"{', '.join(sorted(labels)) or '(none)'}",
                )
            if move.from_label in labels:
                raise fail(
                    f"moved: {move.from_label} is still a key of {self.name}",
                    "`from:` names the old label, which the plan no longer has",
                )
            if {move.from_label, move.to_label} & seen:
                raise fail(
                    f"moved: {move.from_label} -> {move.to_label} repeats a label",
                    "each label may be moved once; chain renames into one entry",
                )
            seen |= {move.from_label, move.to_label}
        return self


AccountName = Annotated[
    StrictStr, AfterValidator(_account_name), _schema(type="string", pattern=ACCOUNT_NAME.pattern)
]
EnvName = Annotated[
    StrictStr, AfterValidator(_variable), _schema(type="string", pattern=ENV_NAME.pattern)
]


class AccountModel(_Strict):
    """A master account the plan manages, and the environment variables holding its
    credentials (their names only; the values never appear in a plan)."""

    name: AccountName
    api_key_env: EnvName | None = None
    secret_env: EnvName | None = None
    private_key_file_env: EnvName | None = None
    passphrase_env: EnvName | None = None


class PlanModel(_Strict):
    """A plan file, `version: 1`."""

    model_config = ConfigDict(extra="forbid", title="orchestrator plan")

    version: int
    project: Annotated[StrictStr, AfterValidator(_project)] | None = None
    exchange: ExchangeModel = Field(default_factory=ExchangeModel)
    accounts: list[AccountModel] | None = None
    backend: BackendModel = Field(default_factory=BackendModel)
    defaults: DefaultsModel = Field(default_factory=DefaultsModel)
    subaccounts: list[SubaccountModel] = Field(default_factory=list)
    notify: list[NotifyUrl] = Field(default_factory=list)
    notify_level: NotifyLevel = DEFAULT_LEVEL

    @field_validator("version", mode="before")
    @classmethod
    def _version_1(cls, value: object) -> int:
        if value != 1 or isinstance(value, bool):
            raise fail(
                f"unsupported plan version {value!r}; this orchestrator reads version 1",
                "set `version: 1`",
            )
        return 1
