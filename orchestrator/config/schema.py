"""The plan file's JSON Schema, for editors (e.g. the YAML language server's `$schema`)."""

from __future__ import annotations

from orchestrator.config.models import PlanModel


def plan_json_schema() -> dict:
    schema = PlanModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = (
        "Desired Binance sub-accounts and API keys. Policy rules that relate several values "
        "(duplicates, whitelists of trading keys, key counts, literal secrets) are checked "
        "by `orchestrator validate`, not by this schema."
    )
    return schema
