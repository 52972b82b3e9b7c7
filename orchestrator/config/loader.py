"""Reading a plan file: YAML -> schema -> policy -> `Desired`, with every problem at once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.config.models import (
    DEFAULT_BINANCE_ENDPOINT,
    DefaultsModel,
    KeyModel,
    PlanModel,
    SubaccountModel,
)
from orchestrator.config.policy import PolicyCheck
from orchestrator.config.problems import PlanError, Problem, sort_problems
from orchestrator.config.profiles import PROFILES, permissions_of
from orchestrator.config.schema_errors import schema_problems
from orchestrator.config.secrets_scan import SECRET_HINT, SecretScan, scan_secrets, scrub
from orchestrator.config.siblings import shared_subaccounts
from orchestrator.config.source import Source, YamlSyntaxError, read_yaml
from orchestrator.domain.model import Desired, DesiredKey, DesiredSubaccount
from orchestrator.domain.naming import project_id_from

DEFAULT_GRACE = timedelta(hours=1)
DEFAULT_SINK = "file:secrets/"
PLAN_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ExchangeSettings:
    kind: str = "sandbox"  # "sandbox" | "binance"
    endpoint: str | None = None  # set for kind binance
    recv_window_ms: int | None = None
    rate_window_s: float | None = None


@dataclass(frozen=True)
class LoadedPlan:
    path: Path
    name: str  # the project id: owns the plan's keys and names state/<name>.state.json
    desired: Desired
    exchange: ExchangeSettings
    warnings: tuple[Problem, ...]
    source_hash: str  # sha256 of the file's bytes

    @property
    def key_count(self) -> int:
        return len(self.desired.keys())


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
    return LoadedPlan(
        path=path,
        name=project,
        desired=build_desired(model, path.stem, project),
        exchange=_exchange(model),
        warnings=tuple(problems),
        source_hash=hashlib.sha256(raw).hexdigest(),
    )


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
    try:
        return path.read_bytes()
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


def _exchange(model: PlanModel) -> ExchangeSettings:
    exchange = model.exchange
    endpoint = exchange.endpoint
    if exchange.kind == "binance" and endpoint is None:
        endpoint = DEFAULT_BINANCE_ENDPOINT
    return ExchangeSettings(
        exchange.kind, endpoint, exchange.recv_window_ms, exchange.rate_window_s
    )
