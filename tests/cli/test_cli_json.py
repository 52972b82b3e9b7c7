"""`--json` on every command that reports results (apply, rotate, lockdown, import): stdout
is one JSON document, of one shape per command, holding no secret; and shell completion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from tests.cli.cli_kit import live_keys, live_names, run
from tests.engine.sandbox_kit import all_secrets

RESULT_FIELDS = {"plan", "changes", "summary", "actions", "findings", "done", "failed", "notes"}


def json_of(result) -> dict:
    """The command's stdout, which must be nothing but the JSON document."""
    return json.loads(result.stdout)


def assert_no_secret(project: Path, *outputs: str) -> None:
    secrets = all_secrets(project)
    assert secrets  # the canaries: every secret the sinks hold
    for secret in secrets:
        assert not any(secret in out for out in outputs)


def test_apply_json_reports_every_action_with_its_outcome_in_plan_order(project: Path):
    planned = json_of(run("plan", "--json"))
    applied = run("apply", "--auto-approve", "--json")
    data = json_of(applied)
    assert set(data) == RESULT_FIELDS
    assert data["changes"] is True and data["done"] == 4 and data["failed"] == 0
    assert data["summary"] == {"create": 4, "update": 0, "rotate": 0, "delete": 0}
    assert [(a["kind"], a.get("label")) for a in data["actions"]] == [
        (a["kind"], a.get("label")) for a in planned["actions"]
    ]
    assert all(a["ok"] is True and a["message"] for a in data["actions"])
    made = {a["api_name"] for a in data["actions"] if a["kind"] == "create"}
    assert made == set(live_names(project))  # what it reports is what the exchange holds
    assert_no_secret(project, applied.output)


def test_apply_json_of_a_saved_changeset_needs_no_flag(project: Path):
    run("plan", "--out", "cs.json")
    data = json_of(run("apply", "cs.json", "--json"))
    assert data["done"] == 4 and data["failed"] == 0
    again = json_of(run("apply", "--auto-approve", "--json"))
    assert again["changes"] is False and again["actions"] == [] and again["done"] == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["apply", "--json"], "pass --auto-approve"),
        (["rotate", "--due", "--json"], "pass --auto-approve"),
        (["lockdown", "--all", "--json"], "pass --yes"),
    ],
)
def test_json_without_the_flag_that_waives_asking_is_a_usage_error(project: Path, args, says):
    refused = run(*args, code=1)
    assert says in refused.output
    assert live_names(project) == []


def test_rotate_json(project: Path):
    run("apply", "--auto-approve")
    rotated = run("rotate", "--label", "QuantBot-BTC", "--auto-approve", "--json")
    data = json_of(rotated)
    assert set(data) == RESULT_FIELDS
    (action,) = data["actions"]
    assert action["kind"] == "rotate" and action["ok"] is True
    assert action["api_name"] == "orc-example.QuantBot-BTC-g2"
    assert action["api_name"] in live_names(project)
    assert_no_secret(project, rotated.output)
    nothing = json_of(run("rotate", "--due", "--auto-approve", "--json"))
    assert nothing["changes"] is False and nothing["actions"] == []


def test_lockdown_json_lists_each_deleted_key_by_a_short_prefix(project: Path):
    run("apply", "--auto-approve")
    before = live_keys(project)
    locked = run("lockdown", "--all", "--yes", "--json")
    data = json_of(locked)
    assert set(data) == {"deleted", "done", "failed", "notes"}
    assert data["done"] == 3 and data["failed"] == 0
    assert {d["api_name"] for d in data["deleted"]} == {name for _, name in before.values()}
    assert all(d["ok"] and d["managed_as"] for d in data["deleted"])
    assert not any(api_key in locked.output for api_key in before)
    assert live_keys(project) == {}


def test_import_json(project: Path):
    run("apply", "--auto-approve")
    for path in (project / "state").glob("example.state.json*"):
        path.unlink()
    data = json_of(run("import", "--all", "--json"))
    adopted = {a["address"]: a["message"] for a in data["adopted"]}
    assert adopted == {
        "quant/QuantBot-BTC": "recorded orc-example.QuantBot-BTC-g1",
        "quant/Koinly-Tax": "recorded orc-example.Koinly-Tax-g1",
        "copy/CopyTrade-Bot": "recorded orc-example.CopyTrade-Bot-g1",
    }


def test_shell_completion_is_offered_and_completes_commands_and_flags():
    runner = CliRunner()
    script = runner.invoke(app, ["--show-completion", "bash"], prog_name="orchestrator")
    assert script.exit_code == 0
    assert "_ORCHESTRATOR_COMPLETE=complete_bash" in script.output
    for words, expected in (
        ("orchestrator pl", "plan"),
        ("orchestrator apply --au", "--auto-approve"),
    ):
        env = {
            "_ORCHESTRATOR_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        completed = runner.invoke(app, [], prog_name="orchestrator", env=env)
        assert completed.output.split() == [expected]
