"""Plan files: loading with positions, schema, profiles, policy checks, JSON Schema, scaffold.

`load_plan` turns a file into a `LoadedPlan` (with `.desired` for the engine) or raises
`PlanError` carrying every `Problem` found, each with file, line, column, key path and a fix.
"""

from orchestrator.config.loader import (
    AccountSettings,
    BackendSettings,
    ExchangeSettings,
    LoadedPlan,
    UnknownAccount,
    account_state_id,
    display_path,
    find_plan,
    load_plan,
    read_backend_settings,
)
from orchestrator.config.problems import PlanError, Problem
from orchestrator.config.scaffold import init_project
from orchestrator.config.schema import plan_json_schema

__all__ = [
    "AccountSettings",
    "BackendSettings",
    "ExchangeSettings",
    "UnknownAccount",
    "account_state_id",
    "LoadedPlan",
    "PlanError",
    "Problem",
    "display_path",
    "find_plan",
    "init_project",
    "load_plan",
    "plan_json_schema",
    "read_backend_settings",
]
