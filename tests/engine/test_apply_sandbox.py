"""End to end through the CLI against the in-process sandbox: plan, apply, drift, recovery."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from orchestrator.wiring import Wiring
from tests.engine.sandbox_kit import all_secrets, cli, hmac_plan, sandbox


def test_init_plan_apply_then_plan_shows_no_changes(project: Path):
    first = cli("plan", "--detailed-exitcode", code=2)
    assert "+ create" in first.output and "Plan: 4 to create" in first.output
    cli("apply", "--auto-approve")
    again = cli("plan", "--detailed-exitcode", code=0)
    assert "No changes" in again.output
    state = json.loads((project / "state" / "example.state.json").read_text())
    assert sorted(state["keys"]) == ["copy/CopyTrade-Bot", "quant/Koinly-Tax", "quant/QuantBot-BTC"]
    cli("log", "verify")


def test_sink_files_are_private_and_secrets_never_leak(project: Path):
    hmac_plan(project)
    outputs = [cli("plan").output, cli("apply", "--auto-approve").output]
    outputs.append(cli("plan", "--json", "--out", "cs.json").output)
    outputs.append(cli("state", "list").output)
    secrets = all_secrets(project)
    assert len(secrets) == 3
    for path in (project / "secrets").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    leaks_in = [
        project / "state" / "example.state.json",
        project / "state" / "audit.jsonl",
        project / "cs.json",
        project / "state" / "example.journal.jsonl",
    ]
    texts = outputs + [p.read_text() for p in leaks_in if p.exists()]
    for secret in secrets:
        assert not any(secret in text for text in texts)


def test_key_widened_out_of_band_is_flagged_and_narrowed(project: Path):
    cli("apply", "--auto-approve")
    from orchestrator.demo import widen_out_of_band

    widen_out_of_band(project)
    flagged = cli("plan", "--detailed-exitcode", code=2)
    assert "possible compromise" in flagged.output
    cli("apply", "--auto-approve")
    assert "No changes" in cli("plan").output


def test_saved_changeset_is_applied_exactly_or_refused_when_stale(project: Path):
    cli("plan", "--out", "cs.json")
    cli("apply", "cs.json", "--auto-approve")
    assert "No changes" in cli("plan").output
    (project / "plans" / "example.yaml").write_text(
        (project / "plans" / "example.yaml").read_text().replace("198.51.100.7", "198.51.100.8")
    )
    cli("plan", "--out", "cs2.json")
    (project / "plans" / "example.yaml").write_text(
        (project / "plans" / "example.yaml").read_text().replace("198.51.100.8", "198.51.100.9")
    )
    refused = cli("apply", "cs2.json", "--auto-approve", code=1)
    assert "changed since" in refused.output


def test_apply_with_no_answer_on_stdin_cancels(project: Path):
    refused = cli("apply", code=1)
    assert "--auto-approve" in refused.output
    assert not (project / "state" / "example.state.json").exists()


def test_second_apply_while_locked_names_the_holder(project: Path):
    from orchestrator.store.files import LocalFileBackend

    with LocalFileBackend(project).lock("example", "apply"):
        refused = cli("apply", "--auto-approve", code=1)
    assert str(os.getpid()) in refused.output


def test_lost_state_is_rebuilt_from_api_names(project: Path):
    cli("apply", "--auto-approve")
    for path in (project / "state").glob("example.state.json*"):
        path.unlink()
    planned = cli("plan").output
    assert "not in state" in planned and "reconcile" in planned
    assert "create" not in planned.replace("0 to create", "") and "delete" not in planned.replace(
        "0 to delete", ""
    )
    rebuilt = cli("state", "rebuild")
    assert "quant/QuantBot-BTC: recorded orc-example.QuantBot-BTC-g1" in rebuilt.output
    assert "QuantBot-BTC" in cli("state", "show", "QuantBot-BTC").output
    assert "No changes" in cli("plan").output


@pytest.mark.parametrize("key_type", ["ed25519", "hmac"])
@pytest.mark.parametrize("fault", ["error_after", "drop_after", "error_before"])
def test_ambiguous_create_converges_without_duplicates(project: Path, key_type, fault):
    if key_type == "hmac":
        hmac_plan(project)
    emulator = sandbox(project)
    emulator.inject(fault, "create_api_key", count=1)
    faulty = Wiring.with_sandbox(emulator)
    cli("apply", "--auto-approve", code=None, wiring=faulty)
    cli("apply", "--auto-approve", wiring=faulty)
    assert "No changes" in cli("plan").output
    names = [k.api_name for s in emulator.accounts.subs.values() for k in s.keys.values()]
    assert sorted(names) == [
        "orc-example.CopyTrade-Bot-g1",
        "orc-example.Koinly-Tax-g1",
        "orc-example.QuantBot-BTC-g1",
    ]
    assert len(all_secrets(project)) == 3


def test_edited_changeset_is_refused(project: Path):
    cli("plan", "--out", "cs.json")
    data = json.loads((project / "cs.json").read_text())
    data["actions"][1]["permissions"] = ["futures", "spot", "universal_transfer"]
    (project / "cs.json").write_text(json.dumps(data))
    refused = cli("apply", "cs.json", "--auto-approve", code=1)
    assert "differ" in refused.output
    assert not (project / "state" / "example.state.json").exists()


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{",
        "[]",
        '{"format": 1}',
        '{"format": 1, "plan_name": "example", "plan_hash": "", "live_fingerprint": "", "state_serial": 0, "actions": [{"kind": "nuke"}], "findings": []}',
    ],
)
def test_hostile_changeset_files_are_refused_cleanly(project: Path, content: str):
    (project / "cs.json").write_text(content)
    refused = cli("apply", "cs.json", "--auto-approve", code=1)
    assert "not a usable changeset" in refused.output


def test_whitelist_add_call_carries_every_planned_ip(project: Path, monkeypatch):
    """Whether Binance's v2 call adds or replaces, no planned address goes missing."""
    from urllib.parse import parse_qs

    cli("apply", "--auto-approve")
    plan = project / "plans" / "example.yaml"
    plan.write_text(
        plan.read_text().replace("ips: [198.51.100.7]", "ips: [198.51.100.7, 198.51.100.8]")
    )
    emulator = sandbox(project)
    sent: list[str] = []
    handle = emulator.handle

    def spy(request):
        if request.path.endswith("/ipRestriction") and request.method == "POST":
            sent.extend(parse_qs(request.body.decode())["ipAddress"])
        return handle(request)

    monkeypatch.setattr(emulator, "handle", spy)
    cli("apply", "--auto-approve", wiring=Wiring.with_sandbox(emulator))
    assert sent == ["198.51.100.7,198.51.100.8"]
    assert "No changes" in cli("plan").output


@pytest.mark.parametrize(
    "field, value",
    [
        ("serial", -5),
        ("serial", "7"),
        ("version", 99),
        ("lineage", "not-a-lineage"),
        ("api_key", "made-up"),
    ],
)
def test_wrong_state_values_end_in_a_message_not_a_traceback(project: Path, field, value):
    cli("apply", "--auto-approve")
    path = project / "state" / "example.state.json"
    data = json.loads(path.read_text())
    target = next(iter(data["keys"].values())) if field == "api_key" else data
    target[field] = value
    path.write_text(json.dumps(data))
    for command in (["plan"], ["apply", "--auto-approve"], ["state", "list"]):
        refused = cli(*command, code=1)
        assert "example.state.json" in refused.output and field in refused.output


def test_damaged_journal_line_stops_nothing_and_is_kept_aside(project: Path):
    cli("apply", "--auto-approve")
    journal = project / "state" / "example.journal.jsonl"
    intent = {"kind": "intent", "op": "x1", "ts": "2024-01-01T00:00:00+00:00"}
    intent["action"] = {"op": "update_ips", "address": "quant/Koinly-Tax"}
    journal.write_text(json.dumps(intent) + "\ngarbage\n" + '{"kind":"outc')
    rebuilt = cli("state", "rebuild")
    assert "State already matches" in rebuilt.output and "line 2" not in rebuilt.output
    assert journal.exists()
    planned = cli("plan")
    assert "line 2" in planned.output and "garbage" not in planned.output
    assert "No changes" in planned.output
    assert journal.exists()  # plan only reads
    applied = cli("apply", "--auto-approve")
    assert "line 2" in applied.output and "garbage" not in applied.output
    assert not journal.exists()
    kept = list((project / "state").glob("example.journal.jsonl.damaged-*"))
    assert len(kept) == 1 and "garbage" in kept[0].read_text()
    cli("apply", "--auto-approve")
    assert "line 2" not in cli("plan").output


def test_torn_last_journal_line_is_ignored_by_plan(project: Path):
    cli("apply", "--auto-approve")
    journal = project / "state" / "example.journal.jsonl"
    journal.write_text('{"op":"x2","ts":"2024-01-01T00:00:00+00:00"}')
    assert "No changes" in cli("plan").output
    cli("apply", "--auto-approve")
    assert "No changes" in cli("plan").output


def test_cutting_the_last_lines_of_an_apply_off_the_audit_log_is_detected(project: Path):
    cli("apply", "--auto-approve")
    log = project / "state" / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]))
    refused = cli("log", "verify", code=1)
    assert "example.state.json" in refused.output
