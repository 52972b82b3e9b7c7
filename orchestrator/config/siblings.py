"""Plans that would manage one sub-account twice.

Two plan files that name the same sub-account each see the other's keys as not in their plan;
with `prune: true` each apply deletes the other's. The plans of a project's `plans/` folder are
compared when one is loaded, so the conflict is a validate error that names both files.
A plan elsewhere that claims the sub-account is caught at plan time, from the owner its keys
carry in their apiNames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.config.limits import MAX_PLAN_BYTES
from orchestrator.config.models import PlanModel
from orchestrator.config.problems import Problem
from orchestrator.config.source import Source

PLAN_SUFFIXES = (".yaml", ".yml")
PLANS_FOLDER = "plans"


def shared_subaccounts(model: PlanModel, path: Path, source: Source, shown: str) -> list[Problem]:
    """A problem for each sub-account of `model` that a sibling plan file also names."""
    problems = []
    for sibling, claims in _sibling_claims(path):
        for index, sub in enumerate(model.subaccounts):
            claim = _claim_of(sub.email, sub.virtual)
            if claim is None or claim not in claims:
                continue
            where = f"subaccounts[{index}].{'email' if sub.email else 'virtual'}"
            problems.append(
                Problem(
                    shown,
                    *source.locate(where),
                    where,
                    f"sub-account {claim[1]} is also managed by {sibling.name}; two plans that "
                    "manage one sub-account prune each other's keys",
                    f"manage {claim[1]} from one plan: merge its keys into {shown} or "
                    f"{sibling.name}, and remove it from the other",
                )
            )
    return problems


def _sibling_claims(path: Path) -> list[tuple[Path, set[tuple[str, str]]]]:
    if path.parent.name != PLANS_FOLDER:
        return []
    try:
        siblings = sorted(
            p
            for p in path.parent.iterdir()
            if p.suffix in PLAN_SUFFIXES and p.is_file() and p.resolve() != path.resolve()
        )
    except OSError:
        return []
    found = []
    for sibling in siblings:
        claims = _claims(_read(sibling))
        if claims:
            found.append((sibling, claims))
    return found


def _read(path: Path) -> Any:
    """A sibling's data, or None if it cannot be read or is too large to be a plan: its own
    validate reports why."""
    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            return None
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError, ValueError):
        return None


def _claims(data: Any) -> set[tuple[str, str]]:
    subs = data.get("subaccounts") if isinstance(data, dict) else None
    if not isinstance(subs, list):
        return set()
    claims = set()
    for sub in subs:
        if isinstance(sub, dict):
            claim = _claim_of(sub.get("email"), sub.get("virtual"))
            if claim is not None:
                claims.add(claim)
    return claims


def _claim_of(email: object, virtual: object) -> tuple[str, str] | None:
    if isinstance(email, str) and email:
        return ("email", email.lower())
    if isinstance(virtual, str) and virtual:
        return ("virtual", virtual.lower())
    return None
