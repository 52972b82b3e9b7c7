"""The test clock moves only in the sandbox: a plan on a real exchange runs on the system clock,
whatever ORCHESTRATOR_NOW holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.config import ExchangeSettings
from orchestrator.wiring import Wiring, clock_for, open_exchange
from tests.engine.sandbox_kit import cli

PLAN = Path("plans") / "example.yaml"
LONG_AGO = "2001-02-03T04:05:06+00:00"


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def sandbox_whatever_the_plan_says(settings, project_dir, subaccount_emails=()):
    """The sandbox, even for a plan that names Binance: lets a test run such a plan offline."""
    return open_exchange(ExchangeSettings(), project_dir, subaccount_emails)


def on_binance(project: Path) -> Wiring:
    """Switch the project's plan to `kind: binance`, wired to the sandbox all the same."""
    path = project / PLAN
    path.write_text(path.read_text().replace("kind: sandbox ", "kind: binance "))
    return Wiring(open_exchange=sandbox_whatever_the_plan_says)


def test_only_the_sandbox_clock_reads_orchestrator_now(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_NOW", LONG_AGO)
    assert clock_for(ExchangeSettings(kind="sandbox"))().year == 2001
    binance = clock_for(ExchangeSettings(kind="binance"))()
    assert abs(binance - datetime.now(UTC)) < timedelta(minutes=1)


def test_workspace_on_binance_ignores_orchestrator_now(project: Path, monkeypatch):
    wiring = on_binance(project)
    monkeypatch.setenv("ORCHESTRATOR_NOW", LONG_AGO)
    workspace = wiring.open_workspace(None)
    assert workspace.plan.exchange.kind == "binance"
    assert workspace.clock().year == datetime.now(UTC).year


def test_rotate_due_on_binance_ignores_a_stray_orchestrator_now(project: Path, monkeypatch):
    wiring = on_binance(project)
    cli("apply", "--auto-approve", wiring=wiring)
    monkeypatch.setenv("ORCHESTRATOR_NOW", in_days(31))
    rotated = cli("rotate", "--due", "--auto-approve", wiring=wiring)
    assert "Nothing to rotate" in rotated.output
