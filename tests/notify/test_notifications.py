"""Notifications from the commands, received by a real HTTP server on loopback through
apprise's json:// target: one per trigger, with the project and the audit log's head, never
a secret, and never deciding a run."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from orchestrator.config import ExchangeSettings
from orchestrator.exchange.models import Permission
from orchestrator.notify import open_notifier
from orchestrator.wiring import Wiring, open_exchange, open_sandbox
from tests.engine.sandbox_kit import all_secrets, cli, hmac_plan
from tests.notify.notify_kit import (
    Exploding,
    Recorder,
    closed_port,
    receiver,
    silent_listener,
)

PLAN = "plans/example.yaml"


@pytest.fixture
def inbox(project: Path, monkeypatch):
    """A receiver that ORCHESTRATOR_NOTIFY names."""
    with receiver() as found:
        monkeypatch.setenv("ORCHESTRATOR_NOTIFY", found.url)
        yield found


def audit_head(project: Path) -> str:
    last = (project / "state" / "audit.jsonl").read_text().splitlines()[-1]
    return json.loads(last)["hash"]


def failing_creates(project: Path) -> Wiring:
    """The sandbox, refusing every key creation with a 503 after the request was sent."""
    emulator = open_sandbox(project / "state" / "sandbox.json")
    emulator.inject("error_before", "create_api_key", count=1000)
    return Wiring.with_sandbox(emulator)


def whitelisted_master(project: Path) -> Wiring:
    """A sandbox whose master key has a whitelist, so a clean account has no high finding."""
    from orchestrator.emulator.master import restrict

    emulator = open_sandbox(project / "state" / "sandbox.json")
    restrict(emulator.master, ["127.0.0.1"])
    return Wiring.with_sandbox(emulator)


def tamper(project: Path) -> None:
    """Out of band: a key nobody planned in a managed sub-account, and a widened key."""

    async def run():
        async with open_exchange(ExchangeSettings(), project) as client:
            await client.create_api_key("quant@example.com", "rogue", frozenset(), [])
            for key in await client.list_all_api_keys("quant@example.com"):
                if key.api_name.startswith("orc-example.Koinly"):
                    await client.set_permissions(key.email, key.api_key, {Permission.SPOT})

    asyncio.run(run())


def test_a_failed_apply_is_notified_with_project_and_audit_head(project: Path, inbox):
    result = cli("apply", "--auto-approve", code=1, wiring=failing_creates(project))
    assert "3 failed" in result.output
    [post] = inbox.posts
    assert post["title"] == "orchestrator [example]: apply failed"
    assert post["type"] == "failure"
    message = post["message"]
    assert "3 of 4 action(s) failed" in message
    assert "quant/QuantBot-BTC: the create had an unknown outcome" in message
    assert message.endswith(f"Project example; audit log head {audit_head(project)}")


def test_a_failed_scheduled_rotation_is_notified(project: Path, inbox, monkeypatch):
    cli("apply", "--auto-approve")
    monkeypatch.setenv("ORCHESTRATOR_NOW", (datetime.now(UTC) + timedelta(days=31)).isoformat())
    cli("rotate", "--due", "--auto-approve", code=1, wiring=failing_creates(project))
    [post] = inbox.posts
    assert post["title"] == "orchestrator [example]: rotate --due failed"
    assert "action(s) failed" in post["message"]
    assert post["message"].endswith(audit_head(project))


def test_a_rotation_that_stops_with_an_error_is_notified(project: Path, inbox):
    result = cli("rotate", "--label", "QuantBot-BTC", "--auto-approve", code=1)
    [post] = inbox.posts
    assert post["title"] == "orchestrator [example]: rotate failed"
    assert post["message"].splitlines()[0] in result.output  # the error the user saw


def test_a_plan_that_cannot_be_read_is_notified_as_the_failed_run(project: Path, inbox):
    plan = project / PLAN
    plan.write_text(plan.read_text().replace("rotate_after: 30d", "rotate_after: 30x"))
    cli("rotate", "--due", "--auto-approve", code=1)
    [post] = inbox.posts
    assert post["title"] == f"orchestrator [{project.name}]: rotate --due failed"
    assert post["message"].startswith("plans/example.yaml:")
    assert "30x" in post["message"]


def test_signs_of_compromise_seen_by_apply_are_notified(project: Path, inbox):
    cli("apply", "--auto-approve")
    tamper(project)
    cli("apply", "--auto-approve")
    [post] = inbox.posts
    assert post["title"].startswith("orchestrator [example]: possible compromise (2 sign(s)")
    message = post["message"]
    assert "CRITICAL quant/Koinly-Tax: permissions: -spot" in message
    assert "HIGH quant/rogue: not in plan" in message
    assert "orchestrator lockdown --all" in message
    assert message.endswith(audit_head(project))


def test_a_lockdown_is_notified(project: Path, inbox):
    cli("apply", "--auto-approve")
    cli("lockdown", "--all", "--yes")
    [post] = inbox.posts
    assert post["title"] == "orchestrator [example]: lockdown: 3 key(s) deleted, 0 failed"
    assert "2 sub-account(s)" in post["message"]
    assert post["message"].endswith(audit_head(project))


def test_audit_findings_at_the_default_level_are_notified(project: Path, inbox):
    cli("apply", "--auto-approve")
    cli("audit")
    [post] = inbox.posts
    assert post["title"] == "orchestrator [example]: audit: 1 finding(s) at high or above"
    assert post["message"].startswith("HIGH master key: the master API key accepts calls")


def test_audit_findings_below_the_level_are_not_notified(project: Path, inbox, monkeypatch):
    cli("apply", "--auto-approve")
    monkeypatch.setenv("ORCHESTRATOR_NOTIFY_LEVEL", "critical")
    cli("audit")
    assert inbox.posts == []
    wiring = whitelisted_master(project)
    monkeypatch.delenv("ORCHESTRATOR_NOTIFY_LEVEL")
    cli("audit", wiring=wiring)
    assert inbox.posts == []  # a clean account sends nothing


def test_plan_targets_and_level_are_used_and_compromise_passes_any_level(project: Path):
    plan = project / PLAN
    cli("apply", "--auto-approve")
    tamper(project)
    wiring = whitelisted_master(project)
    with receiver() as inbox:
        plan.write_text(plan.read_text() + f"notify:\n  - {inbox.url}\nnotify_level: critical\n")
        cli("audit", wiring=wiring)
    [post] = inbox.posts
    assert post["title"].startswith("orchestrator [example]: possible compromise: ")
    assert "HIGH quant/rogue" in post["message"]  # high, below the level, but a sign
    assert "CRITICAL quant/Koinly-Tax" in post["message"]
    assert "no_whitelist" not in post["message"] and "MEDIUM" not in post["message"]


def test_no_secret_reaches_a_notice_output_or_warning(project: Path, monkeypatch):
    canary = "CanaryNotifyToken9"
    hmac_plan(project)
    cli("apply", "--auto-approve")
    secrets = all_secrets(project)
    master = open_sandbox(project / "state" / "sandbox.json").master.secret
    assert secrets and master
    outputs = []
    with receiver() as inbox:
        port = inbox.server.server_address[1]
        dead = f"json://ops:{canary}@127.0.0.1:{closed_port()}/hook"
        live = f"json://ops:{canary}@127.0.0.1:{port}/hook?token={canary}x"
        monkeypatch.setenv("ORCHESTRATOR_NOTIFY", f"{live},{dead},nosuch://{canary}")
        tamper(project)
        runs = [("apply", "--auto-approve"), ("audit",), ("lockdown", "--all", "--yes")]
        for args in runs:
            result = cli(*args, code=None, wiring=failing_creates(project))
            outputs.append(result.output + result.stderr)
    sent = inbox.raw()
    assert len(inbox.posts) == 3  # compromise (apply), findings (audit), lockdown
    everything = sent + "".join(outputs)
    for secret in [canary, master, *secrets]:
        assert secret not in everything
    assert "json://ops:****@127.0.0.1" in outputs[0]  # the dead target, shown redacted
    assert "notification not sent" in outputs[0] and "nosuch://…" in outputs[0]


def test_an_unreachable_target_never_changes_the_outcome(project: Path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_NOTIFY", f"json://127.0.0.1:{closed_port()}/x")
    failed = cli("apply", "--auto-approve", code=1, wiring=failing_creates(project))
    assert "notification not sent; the run itself is unaffected" in failed.stderr
    passed = cli("apply", "--auto-approve")  # nothing to notify: no warning either
    assert "notification not sent" not in passed.stderr
    audited = cli("audit")
    assert audited.exit_code == 0 and "notification not sent" in audited.stderr


def test_a_notifier_that_raises_never_changes_the_outcome(project: Path):
    exploding = Wiring(open_notifier=lambda settings: Exploding())
    cli("apply", "--auto-approve", code=1, wiring=_with_faults(project, exploding))
    result = cli("audit", wiring=exploding)
    assert "the notifier raised RuntimeError" in result.stderr


def test_a_target_that_never_answers_is_given_up_on(project: Path, monkeypatch):
    quick = Wiring(open_notifier=partial(open_notifier, deadline_s=0.2))
    with silent_listener() as port:
        monkeypatch.setenv("ORCHESTRATOR_NOTIFY", f"json://127.0.0.1:{port}/x")
        result = cli("audit", wiring=quick)
    assert "no answer within 0.2s" in result.stderr


def test_events_reach_an_injected_notifier_with_the_plans_settings(project: Path):
    plan = project / PLAN
    plan.write_text(plan.read_text() + "notify: [json://hooks.example.com/ops]\n")
    recorder = Recorder()
    cli("apply", "--auto-approve", code=1, wiring=_with_faults(project, recorder.wiring()))
    assert recorder.settings.urls == ("json://hooks.example.com/ops",)
    [notice] = recorder.notices
    assert notice.project == "example" and notice.audit_head == audit_head(project)
    assert notice.event.headline() == "apply failed"


def _with_faults(project: Path, wiring: Wiring) -> Wiring:
    from dataclasses import replace

    return replace(wiring, open_exchange=failing_creates(project).open_exchange)


def test_a_bot_that_did_not_switch_is_notified_and_its_old_key_kept(project: Path, inbox):
    plan = project / PLAN
    failing = '        reload: ["python3", "-c", "raise SystemExit(3)"]\n'
    text = plan.read_text()
    anchor = "      - label: QuantBot-BTC\n        profile: quant               # read + spot + futures\n"
    assert anchor in text
    plan.write_text(text.replace(anchor, anchor + failing))
    cli("apply", "--auto-approve")  # a first key replaces none: no step runs
    assert inbox.posts == []
    cli("rotate", "--label", "QuantBot-BTC", "--auto-approve", code=1)
    [post] = inbox.posts
    assert post["title"] == "orchestrator [example]: rotate failed"
    assert "quant/QuantBot-BTC" in post["message"] and "reload" in post["message"]
    assert post["message"].endswith(audit_head(project))
    cli("audit", code=None)
    audit_post = inbox.posts[-1]
    assert "HIGH quant/QuantBot-BTC" in audit_post["message"], audit_post["message"]
