"""The notify package on its own: settings from the plan and the environment, targets shown
without their tokens, notices that say what happened and nothing secret."""

from __future__ import annotations

import io

import pytest

from orchestrator.engine.alerts import audit_findings, is_compromise, stopped
from orchestrator.engine.changeset import Finding, Severity
from orchestrator.logs import configure
from orchestrator.notify import (
    AppriseNotifier,
    CommandFailed,
    Notice,
    NotifySettings,
    SilentNotifier,
    open_notifier,
)
from orchestrator.notify.events import MAX_LINES, clean
from orchestrator.notify.targets import UnusableUrl, target
from tests.notify.notify_kit import closed_port, receiver

HEAD = "ab" * 32


@pytest.fixture
def logged() -> io.StringIO:
    stream = io.StringIO()
    configure(stream=stream)
    return stream


def test_plan_and_environment_targets_combine_once_each():
    plan = NotifySettings(("json://127.0.0.1:9/a",), "medium")
    env = {"ORCHESTRATOR_NOTIFY": " json://127.0.0.1:9/b , json://127.0.0.1:9/a,"}
    notifier = open_notifier(plan, env)
    assert isinstance(notifier, AppriseNotifier)
    assert [t.shown for t in notifier.targets] == ["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"]
    assert notifier.level == "medium"


def test_the_environment_level_wins_and_a_bad_one_is_warned_about(logged):
    assert (
        open_notifier(NotifySettings(level="low"), {"ORCHESTRATOR_NOTIFY_LEVEL": "CRITICAL"}).level
        == "critical"
    )
    kept = open_notifier(NotifySettings(level="low"), {"ORCHESTRATOR_NOTIFY_LEVEL": "loud"})
    assert isinstance(kept, SilentNotifier) and kept.level == "low"
    assert "ORCHESTRATOR_NOTIFY_LEVEL is not a level; using low" in logged.getvalue()


def test_an_unusable_environment_target_is_skipped_with_a_warning(logged):
    env = {"ORCHESTRATOR_NOTIFY": "nosuch://SecretPart123,json://127.0.0.1:9/ok"}
    notifier = open_notifier(NotifySettings(), env)
    assert [t.shown for t in notifier.targets] == ["json://127.0.0.1:9/ok"]
    out = logged.getvalue()
    assert "nosuch://… (entry 1 of ORCHESTRATOR_NOTIFY)" in out and "SecretPart123" not in out


@pytest.mark.parametrize("url", ["", "   ", "Canary12.example", "nosuch://Canary12", "json://", 7])
def test_unusable_urls_are_refused_without_quoting_them(url):
    with pytest.raises(UnusableUrl) as refused:
        target(url)
    assert "Canary12" not in str(refused.value)


def test_a_target_is_shown_and_reported_without_its_tokens():
    found = target("json://ops:Pass-Word_42@127.0.0.1:9/hook?-secretfield=Tok3nValue")
    assert found.shown == "json://ops:****@127.0.0.1:9/hook"
    said = found.redact("sent to json://ops:Pass-Word_42@127.0.0.1:9/hook with Tok3nValue")
    assert "Pass-Word_42" not in said and "Tok3nValue" not in said and "127.0.0.1" in said


def test_a_dead_target_is_warned_about_and_send_returns(logged):
    dead = target(f"json://ops:DeadPass99@127.0.0.1:{closed_port()}/x")
    AppriseNotifier([dead]).send(Notice("p", HEAD, CommandFailed("apply", "boom")))
    out = logged.getvalue()
    assert "notification not sent" in out and "Connection error" in out
    assert "DeadPass99" not in out


def test_a_plugin_that_raises_is_warned_about(logged):
    from apprise.decorators import notify

    @notify(on="orcboom")
    def explode(body, title, notify_type, *args, **kwargs):
        raise RuntimeError("boom")

    AppriseNotifier([target("orcboom://")]).send(Notice("p", None, CommandFailed("apply", "x")))
    assert "notification not sent" in logged.getvalue()


def test_a_delivered_notice_has_title_urgency_and_footer():
    with receiver() as inbox:
        AppriseNotifier([target(inbox.url)]).send(
            Notice("desk1", HEAD, CommandFailed("rotate --due", "3 of 4 action(s) failed"))
        )
    [post] = inbox.posts
    assert post["title"] == "orchestrator [desk1]: rotate --due failed"
    assert post["type"] == "failure"
    assert post["message"] == f"3 of 4 action(s) failed\nProject desk1; audit log head {HEAD}"


def test_notice_text_loses_anything_shaped_like_key_material():
    secret = "Zx9" * 22
    pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----"
    text = clean(f"failed with {secret} and {pem}")
    assert secret not in text and "MC4CAQ" not in text and text.count("[redacted]") == 2
    many = CommandFailed("apply", "x", tuple(f"line {n}" for n in range(MAX_LINES + 5)))
    assert many.details()[-1] == "… and 5 more lines"


def test_an_empty_audit_log_is_said_so():
    assert Notice("p", None, CommandFailed("apply", "x")).body.endswith(
        "none (the audit log is empty)"
    )


def test_stopped_runs_keep_the_errors_own_words():
    assert stopped("apply", ValueError("first\nsecond")) == CommandFailed(
        "apply", "first", ("second",)
    )
    assert stopped("apply", KeyError()).reason == "stopped with KeyError"


def finding(kind: str, address: str, severity: Severity = Severity.HIGH) -> Finding:
    return Finding(kind, address, "m", severity)


@pytest.mark.parametrize(
    ("found", "sign"),
    [
        (finding("widened", "quant/Bot", Severity.CRITICAL), True),
        (finding("withdrawals", "quant/Bot", Severity.CRITICAL), True),
        (finding("master_withdrawals", "master key", Severity.CRITICAL), True),
        (finding("unmanaged", "quant/rogue"), True),  # nobody named it
        (finding("unmanaged", "quant/orc-example.OldBot-g2"), False),  # a label removed
        (finding("unmanaged", "shadow@example.com/rogue"), False),  # sub-account not managed
        (finding("no_whitelist", "quant/rogue"), False),
    ],
)
def test_signs_of_compromise(found, sign):
    assert is_compromise(found, {"quant"}) is sign


def test_audit_findings_keep_the_level_and_every_sign():
    found = [
        finding("overdue", "quant/Bot", Severity.MEDIUM),
        finding("no_whitelist", "quant/rogue", Severity.HIGH),
        finding("unmanaged", "quant/rogue", Severity.HIGH),
    ]
    event = audit_findings(found, {"quant"}, "critical")
    assert event.compromise and [a.address for a in event.findings] == ["quant/rogue"]
    assert [a.severity for a in event.findings] == ["high"]
    assert audit_findings(found[:2], {"quant"}, "critical") is None
    assert len(audit_findings(found, {"quant"}, "medium").findings) == 3
