"""A plan's sinks, checked the way apply checks them before it writes: every refusal becomes
a plan problem at the line that names the sink, before anything changes.

The rules are the sinks' own (`sinks.planning`); this module only says where in the plan file
each key's sink is written: the key's `secrets:`, else `defaults.secrets`, else (the built-in
default) the key's label.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from orchestrator.config import LoadedPlan, PlanError, Problem
from orchestrator.config.problems import Severity, sort_problems
from orchestrator.domain.model import DesiredKey
from orchestrator.sinks.paths import GitCheck
from orchestrator.sinks.planning import SinkUse, refusals

HINT = "change the sink as the message says, or give this key its own `secrets:`"


def sink_problems(
    plan: LoadedPlan,
    project_dir: Path,
    *,
    git: GitCheck | None = None,
    environment_errors: bool = True,
) -> list[Problem]:
    """A problem for each key whose material apply would refuse to write. A sink that only
    lacks settings from the environment (Vault's address and token) is an error when
    `environment_errors` (plan, apply), else a warning (validate runs anywhere)."""
    placed = list(_placed_keys(plan))
    uses = [SinkUse(key.sink, key.address) for key, _ in placed]
    problems = []
    for index, refusal in sorted(refusals(uses, project_dir, git=git).items()):
        key, path = placed[index]
        severity: Severity = "error"
        if refusal.environment and not environment_errors:
            severity = "warning"
        problems.append(_problem(plan, key, path, refusal.message, severity))
    return sort_problems(problems)


def refuse_unwritable_sinks(
    plan: LoadedPlan, project_dir: Path, git: GitCheck | None = None
) -> None:
    """PlanError when apply would refuse to write any key's material."""
    problems = sink_problems(plan, project_dir, git=git)
    if any(p.is_error for p in problems):
        raise PlanError(problems)


def _placed_keys(plan: LoadedPlan) -> Iterator[tuple[DesiredKey, str]]:
    """Each planned key with the plan path of its `secrets:` setting."""
    for i, sub in enumerate(plan.desired.subaccounts):
        for j, key in enumerate(sub.keys):
            yield key, f"{plan.subaccount_path(i)}.keys[{j}].secrets"


def _problem(
    plan: LoadedPlan, key: DesiredKey, path: str, message: str, severity: Severity
) -> Problem:
    """The problem about the key's sink (`path`), shown at the line that sets that sink."""
    if plan.written(path):
        where = path
    elif plan.written("defaults.secrets"):
        where, message = "defaults.secrets", f"{key.address}: {message} (sink from defaults)"
    else:
        where = path.removesuffix(".secrets") + ".label"
        message = f"{key.address}: {message} (the default sink {key.sink})"
    located = plan.problem(where, message, HINT, severity)
    return Problem(located.file, located.line, located.column, path, message, HINT, severity)
