"""Reading a plan file: YAML -> schema -> policy -> `Desired`, with every problem at once."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.config.limits import (
    MAX_KEYS,
    MAX_PLAN_BYTES,
    MAX_SUBACCOUNTS,
    SPLIT_HINT,
    size_in_words,
)
from orchestrator.config.models import (
    DEFAULT_BINANCE_ENDPOINT,
    AccountModel,
    BackendModel,
    DefaultsModel,
    KeyModel,
    PlanModel,
    SubaccountModel,
)
from orchestrator.config.policy import PolicyCheck
from orchestrator.config.problems import PlanError, Problem, Severity, sort_problems
from orchestrator.config.profiles import PROFILES, permissions_of
from orchestrator.config.schema_errors import schema_problems
from orchestrator.config.secrets_scan import SECRET_HINT, SecretScan, scan_secrets, scrub
from orchestrator.config.siblings import shared_subaccounts
from orchestrator.config.source import Source, YamlSyntaxError, read_yaml
from orchestrator.domain.model import Desired, DesiredKey, DesiredSubaccount
from orchestrator.domain.naming import project_id_from
from orchestrator.exchange.credentials import DEFAULT_VARIABLES, CredentialVariables
from orchestrator.notify import NotifySettings

DEFAULT_GRACE = timedelta(hours=1)
DEFAULT_DSN_ENV = "ORCHESTRATOR_PG_DSN"
DEFAULT_PG_SCHEMA = "orchestrator"
DEFAULT_SINK = "file:secrets/"
DEFAULT_RELOAD_TIMEOUT = timedelta(seconds=30)
PLAN_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ExchangeSettings:
    kind: str = "sandbox"  # "sandbox" | "binance"
    endpoint: str | None = None  # set for kind binance
    recv_window_ms: int | None = None
    rate_window_s: float | None = None
    account: str | None = None  # the master account's name; None: the plan names none
    credentials: CredentialVariables = DEFAULT_VARIABLES  # where its master key is read


@dataclass(frozen=True)
class AccountSettings:
    """One master account of a plan with `accounts:`: its exchange settings (with its own
    credential variables) and the names of its sub-accounts."""

    name: str
    exchange: ExchangeSettings
    subaccounts: tuple[str, ...]


@dataclass(frozen=True)
class BackendSettings:
    """Where the plan's state, lock, journal and audit log live. For postgres, the DSN is
    read from the environment variable `dsn_env` when the backend is opened."""

    kind: str = "local"  # "local" | "postgres"
    dsn_env: str = DEFAULT_DSN_ENV
    schema: str = DEFAULT_PG_SCHEMA


@dataclass(frozen=True)
class LoadedPlan:
    """A plan, or one master account's part of it (see `per_account`)."""

    path: Path
    name: str  # the state id: the project id, or <project>@<account> for one account's part
    desired: Desired
    exchange: ExchangeSettings
    warnings: tuple[Problem, ...]
    source_hash: str  # sha256 of the file's bytes
    notify: NotifySettings = NotifySettings()  # the plan's own targets and level
    source: Source | None = field(default=None, compare=False, repr=False)
    accounts: tuple[AccountSettings, ...] = ()  # empty: one account, BINANCE_* variables
    account: str | None = None  # set on one account's part
    #: where each of `desired.subaccounts` sits in the file's `subaccounts:` list, for an
    #: account's part, which holds some of them (None: all, in order)
    positions: tuple[int, ...] | None = None
    backend: BackendSettings = BackendSettings()

    @property
    def key_count(self) -> int:
        return len(self.desired.keys())

    def problem(self, path: str, message: str, hint: str, severity: Severity = "error") -> Problem:
        """A problem at `path` of this plan (`subaccounts[0].keys[1].secrets`), located where
        the file writes it (or its nearest parent)."""
        line, column = self.source.locate(path) if self.source else (None, None)
        return Problem(display_path(self.path), line, column, path, message, hint, severity)

    def subaccount_path(self, index: int) -> str:
        """The plan path of `desired.subaccounts[index]` in the file: `subaccounts[N]`."""
        return f"subaccounts[{index if self.positions is None else self.positions[index]}]"

    def written(self, path: str) -> bool:
        """Whether the file itself writes a value at `path` (rather than inheriting it)."""
        return self.source is not None and path in self.source.values

    @property
    def project(self) -> str:
        """The project id, which every key's apiName carries whatever its account."""
        return self.desired.project or self.name

    @property
    def account_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.accounts)

    def per_account(self, only: Collection[str] = ()) -> list[LoadedPlan]:
        """One part per master account (those named in `only`, else all), each with its own
        state id, sub-accounts and credentials; a plan without `accounts:` is its own only
        part. Raises UnknownAccount for a name in `only` the plan does not have."""
        unknown = sorted(set(only) - set(self.account_names))
        if unknown:
            raise UnknownAccount(
                f"--account {', '.join(unknown)}: {self.path.name} has "
                + (
                    f"no such account (accounts: {', '.join(self.account_names)})"
                    if self.accounts
                    else "no `accounts:`; leave --account out"
                )
            )
        if not self.accounts:
            return [self]
        return [self._part(a) for a in self.accounts if not only or a.name in only]

    def _part(self, account: AccountSettings) -> LoadedPlan:
        mine = set(account.subaccounts)
        state_id = account_state_id(self.project, account.name)
        return replace(
            self,
            name=state_id,
            desired=replace(
                self.desired,
                plan_name=state_id,  # a saved changeset names the account it was made for
                subaccounts=tuple(s for s in self.desired.subaccounts if s.name in mine),
            ),
            positions=tuple(i for i, s in enumerate(self.desired.subaccounts) if s.name in mine),
            exchange=account.exchange,
            account=account.name,
        )


def account_state_id(project: str, account: str) -> str:
    """What names one account's state, lock and journal: `<project>@<account>`."""
    return f"{project}@{account}"


class UnknownAccount(ValueError):
    """`--account` named an account the plan does not have."""


def load_plan(path: Path) -> LoadedPlan:
    """The validated plan at `path`, or PlanError with every problem found in it."""
    path = Path(path)
    shown = display_path(path)
    raw = _read_bytes(path, shown)
    source = _parse(raw, shown)
    model, problems = _check(source, shown)
    if model is not None:
        problems = sort_problems(problems + shared_subaccounts(model, path, source, shown))
    errors = [p for p in problems if p.is_error]
    if errors or model is None:
        raise PlanError(problems)
    project = model.project or project_id_from(path.stem)
    exchange = _exchange(model)
    return LoadedPlan(
        path=path,
        name=project,
        desired=build_desired(model, project, project),
        exchange=exchange,
        warnings=tuple(problems),
        source_hash=hashlib.sha256(raw).hexdigest(),
        notify=NotifySettings(tuple(model.notify), model.notify_level),
        source=source,
        accounts=_accounts(model, exchange, source, shown),
        backend=_backend(model),
    )


def read_backend_settings(path: Path) -> BackendSettings:
    """The `backend:` section of the plan at `path`, read on its own so that the store of a
    plan that fails validation elsewhere can still be inspected. PlanError when the section
    itself is wrong (or the file is not YAML)."""
    shown = display_path(path)
    source = _parse(_read_bytes(path, shown), shown)
    data = source.data if isinstance(source.data, dict) else {}
    try:
        section = _BackendOnly.model_validate({"backend": data.get("backend") or {}})
    except ValidationError as exc:
        raise PlanError(sort_problems(schema_problems(exc, source, shown, _BackendOnly))) from None
    return _backend_settings(section.backend)


class _BackendOnly(BaseModel):
    model_config = ConfigDict(extra="ignore")

    backend: BackendModel


def find_plan(explicit: Path | None, cwd: Path) -> Path:
    """The plan to use: `explicit`, else the only plans/*.yaml under `cwd`."""
    if explicit is not None:
        explicit = Path(explicit)
        return explicit if explicit.is_absolute() else cwd / explicit
    plans = cwd / "plans"
    found = sorted(p for p in plans.glob("*") if p.suffix in PLAN_SUFFIXES and p.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise PlanError(
            [
                Problem(
                    "plans/",
                    None,
                    None,
                    "",
                    f"no plan file (plans/*.yaml) in {cwd}",
                    "run `orchestrator init` to create plans/example.yaml, or pass a plan file",
                )
            ]
        )
    names = ", ".join(f"plans/{p.name}" for p in found)
    raise PlanError(
        [
            Problem(
                "plans/",
                None,
                None,
                "",
                f"several plan files: {names}",
                f"name the one to use, e.g. `orchestrator --plan plans/{found[0].name} ...`",
            )
        ]
    )


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it is under it (as users typed it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


# ---- reading


def _read_bytes(path: Path, shown: str) -> bytes:
    """The file's bytes; a file over MAX_PLAN_BYTES is refused before it is read (its size is
    asked first, and at most one byte more than the limit is ever read)."""
    try:
        with path.open("rb") as file:
            _refuse_size(os.fstat(file.fileno()).st_size, shown)
            raw = file.read(MAX_PLAN_BYTES + 1)
        _refuse_size(len(raw), shown)
        return raw
    except FileNotFoundError:
        raise _whole_file(
            shown, "file not found", "check the path, or run `orchestrator init`"
        ) from None
    except IsADirectoryError:
        raise _whole_file(
            shown, "is a directory, not a plan file", "name a .yaml file inside it"
        ) from None
    except OSError as exc:
        raise _whole_file(
            shown, f"cannot read: {exc.strerror or exc}", "check the file's permissions"
        ) from None


def _refuse_size(size: int, shown: str) -> None:
    if size > MAX_PLAN_BYTES:
        raise _whole_file(
            shown,
            f"the plan is {size_in_words(size)}; a plan file may be at most "
            f"{size_in_words(MAX_PLAN_BYTES)}",
            SPLIT_HINT,
        )


def _parse(raw: bytes, shown: str) -> Source:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PlanError(
            [
                Problem(
                    shown, line, column, "", "the file is not UTF-8 text", "save the plan as UTF-8"
                )
            ]
        ) from None
    try:
        return read_yaml(text)
    except YamlSyntaxError as exc:
        found = exc.problem
        raise PlanError(
            [Problem(shown, *found.position, found.path, found.message, found.hint)]
        ) from None
    except RecursionError:
        raise _whole_file(
            shown,
            "the YAML is nested too deeply to read",
            "a plan needs a few levels (subaccounts, keys, ips): flatten the file",
        ) from None


def _whole_file(shown: str, message: str, hint: str) -> PlanError:
    return PlanError([Problem(shown, None, None, "", message, hint)])


# ---- checking


def _check(source: Source, shown: str) -> tuple[PlanModel | None, list[Problem]]:
    """Every problem of the file, and the validated model when the schema held."""
    problems = [Problem(shown, *p.position, p.path, p.message, p.hint) for p in source.problems]
    data = source.data
    if data is None:
        problems.append(
            Problem(
                shown,
                1,
                1,
                "",
                "the plan file is empty",
                "start from `orchestrator init`, or write at least `version: 1`",
            )
        )
        return None, problems
    too_many = _count_problems(data, source, shown)
    if too_many:
        return None, problems + too_many
    secrets = scan_secrets(data)
    problems += _secret_problems(secrets, source, shown)
    if not isinstance(data, dict):
        problems.append(
            Problem(
                shown,
                *source.locate(""),
                "",
                f"the plan must be a mapping, not a {_kind(data)}",
                "write `version: 1`, `exchange:`, `defaults:` and `subaccounts:` at the top level",
            )
        )
        return None, _finish(problems, secrets)
    model, schema = _validate(data, source, shown)
    problems += [p for p in schema if not _under(p.path, secrets.paths())]
    problems += _policy_problems(data, source, shown)
    return model, _finish(problems, secrets)


def _count_problems(data: Any, source: Source, shown: str) -> list[Problem]:
    """More sub-accounts or keys than one plan may hold: reported alone, before the checks
    whose cost grows with them."""
    subaccounts = data.get("subaccounts") if isinstance(data, dict) else None
    if not isinstance(subaccounts, list):
        return []
    keys = sum(
        len(sub["keys"])
        for sub in subaccounts
        if isinstance(sub, dict) and isinstance(sub.get("keys"), list)
    )
    found = []
    for what, count, limit in (
        ("sub-accounts", len(subaccounts), MAX_SUBACCOUNTS),
        ("keys", keys, MAX_KEYS),
    ):
        if count > limit:
            found.append(
                Problem(
                    shown,
                    *source.locate("subaccounts", key=True),
                    "subaccounts",
                    f"the plan has {count} {what}; one plan may have at most {limit}",
                    SPLIT_HINT,
                )
            )
    return found


def _validate(data: dict, source: Source, shown: str) -> tuple[PlanModel | None, list[Problem]]:
    try:
        return PlanModel.model_validate(data), []
    except ValidationError as exc:
        return None, schema_problems(exc, source, shown, PlanModel)


def _secret_problems(scan: SecretScan, source: Source, shown: str) -> list[Problem]:
    found = []
    for finding in scan.findings:
        line, column = source.locate(finding.path, key=finding.on_key)
        found.append(Problem(shown, line, column, finding.path, finding.message, SECRET_HINT))
    return found


def _policy_problems(data: dict, source: Source, shown: str) -> list[Problem]:
    found = []
    for finding in PolicyCheck(data).run():
        line, column = source.locate(finding.path, key=finding.on_key)
        found.append(
            Problem(
                shown, line, column, finding.path, finding.message, finding.hint, finding.severity
            )
        )
    return found


def _finish(problems: list[Problem], secrets: SecretScan) -> list[Problem]:
    """Sorted, unique, and without any secret the file held (messages may quote values)."""
    if secrets.literals:
        problems = [
            Problem(
                p.file,
                p.line,
                p.column,
                p.path,
                scrub(p.message, secrets.literals),
                scrub(p.hint, secrets.literals),
                p.severity,
            )
            for p in problems
        ]
    return sort_problems(problems)


def _under(path: str, roots: set[str]) -> bool:
    return any(path == root or path.startswith((root + ".", root + "[")) for root in roots)


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


# ---- building the desired state


def build_desired(model: PlanModel, plan_name: str, project: str | None = None) -> Desired:
    subaccounts = tuple(
        _desired_subaccount(sub, model.defaults, project) for sub in model.subaccounts
    )
    return Desired(plan_name=plan_name, subaccounts=subaccounts, project=project)


def _desired_subaccount(
    sub: SubaccountModel, defaults: DefaultsModel, project: str | None
) -> DesiredSubaccount:
    former = {m.to_label: m.from_label for m in sub.moved}
    return DesiredSubaccount(
        name=sub.name,
        email=sub.email,
        virtual=sub.virtual,
        prune=sub.prune,
        keys=tuple(
            _desired_key(sub.name, key, defaults, project, former.get(key.label))
            for key in sub.keys
        ),
        moved=tuple((m.from_label, m.to_label) for m in sub.moved),
    )


def _desired_key(
    subaccount: str,
    key: KeyModel,
    defaults: DefaultsModel,
    project: str | None,
    former_label: str | None,
) -> DesiredKey:
    def pick(field: str) -> Any:
        own = getattr(key, field)
        return own if own is not None else getattr(defaults, field)

    rotate_after = (
        key.rotate_after if "rotate_after" in key.model_fields_set else defaults.rotate_after
    )
    ips = () if key.ip_restriction == "none" else tuple(sorted(pick("ips") or ()))
    grace = pick("grace")
    return DesiredKey(
        subaccount=subaccount,
        label=key.label,
        permissions=_permissions(key, defaults),
        ips=ips,
        key_type=pick("key_type") or "ed25519",
        rotate_after=rotate_after,
        grace=DEFAULT_GRACE if grace is None else grace,
        sink=pick("secrets") or DEFAULT_SINK,
        verify=bool(pick("verify")),
        reload=tuple(pick("reload") or ()),
        check=tuple(pick("check") or ()),
        reload_timeout=pick("reload_timeout") or DEFAULT_RELOAD_TIMEOUT,
        owner=project,
        former_label=former_label,
    )


def _permissions(key: KeyModel, defaults: DefaultsModel):
    """The key's own profile/permissions, else the defaults', else read-only."""
    for settings in (key, defaults):
        if settings.permissions is not None:
            return permissions_of(settings.permissions)
        if settings.profile is not None:
            return PROFILES[settings.profile]
    return PROFILES["read-only"]


def _accounts(
    model: PlanModel, exchange: ExchangeSettings, source: Source, shown: str
) -> tuple[AccountSettings, ...]:
    if not model.accounts:
        return ()
    first = model.accounts[0].name
    owned: dict[str, list[str]] = {a.name: [] for a in model.accounts}
    for sub in model.subaccounts:
        owned[sub.account or first].append(sub.name)
    return tuple(
        AccountSettings(
            account.name,
            replace(
                exchange,
                account=account.name,
                credentials=_credentials(account, f"accounts[{index}]", source, shown),
            ),
            tuple(owned[account.name]),
        )
        for index, account in enumerate(model.accounts)
    )


def _credentials(
    account: AccountModel, path: str, source: Source, shown: str
) -> CredentialVariables:
    line, column = source.locate(path)
    return CredentialVariables(
        api_key=account.api_key_env or "",
        secret=account.secret_env,
        private_key_file=account.private_key_file_env,
        passphrase=account.passphrase_env,
        where=f"account {account.name} ({shown}:{line}:{column})",
    )


def _exchange(model: PlanModel) -> ExchangeSettings:
    exchange = model.exchange
    endpoint = exchange.endpoint
    if exchange.kind == "binance" and endpoint is None:
        endpoint = DEFAULT_BINANCE_ENDPOINT
    return ExchangeSettings(
        exchange.kind, endpoint, exchange.recv_window_ms, exchange.rate_window_s
    )


def _backend(model: PlanModel) -> BackendSettings:
    return _backend_settings(model.backend)


def _backend_settings(backend: BackendModel) -> BackendSettings:
    return BackendSettings(
        backend.kind, backend.dsn_env or DEFAULT_DSN_ENV, backend.schema_ or DEFAULT_PG_SCHEMA
    )
