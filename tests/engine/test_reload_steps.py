"""`reload:` and `check:` through the CLI against the sandbox: the steps run after the new key
is in its sink, older generations stay live until they succeed, and nothing they see or print
carries a secret. Liveness is read from the emulator, not from the tool's state."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from orchestrator.sinks import open_sink
from tests.engine.sandbox_kit import cli, sandbox

ADDRESS = "quant/Bot"
SINK = "dotenv:bots/bot.env"

#: the reload command: logs its environment, prints the bot's env file (the secret in it is
#: the canary), then exits with the status in `exit_status` (0 without that file).
RELOAD_SCRIPT = """\
import json, os, pathlib, sys
here = pathlib.Path(sys.argv[0]).parent
with open(here / "steps.jsonl", "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "env": dict(os.environ)}) + "\\n")
location = os.environ.get("ORCHESTRATOR_SINK_LOCATION", "")
if location and os.path.exists(location):
    print(open(location).read())
status = here / "exit_status"
print("reload done", file=sys.stderr)
sys.exit(int(status.read_text()) if status.exists() else 0)
"""

PLAN = """\
version: 1
project: desk
defaults:
  key_type: hmac
  grace: {grace}
  ips: []
  reload: [{python}, {script}, reload]
{extra}subaccounts:
  - name: quant
    email: quant@example.com
    keys:
      - label: Bot
        profile: read-only
        secrets: {sink}
      - label: Plain
        profile: read-only
        reload: []
"""


def write_plan(project: Path, *, grace: str = "0s", extra: str = "") -> None:
    script = project / "tools" / "reload.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(RELOAD_SCRIPT)
    text = PLAN.format(
        grace=grace,
        python=json.dumps(sys.executable),
        script=json.dumps(str(script)),
        extra=extra,
        sink=SINK,
    )
    (project / "plans" / "example.yaml").write_text(text)
    with open(project / ".gitignore", "a", encoding="utf-8") as out:
        out.write("bots/\n")


def fail_steps(project: Path, status: int = 3) -> None:
    (project / "tools" / "exit_status").write_text(str(status))


def mend_steps(project: Path) -> None:
    (project / "tools" / "exit_status").unlink()


def step_runs(project: Path) -> list[dict]:
    log = project / "tools" / "steps.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def live_names(project: Path) -> list[str]:
    emulator = sandbox(project)
    return sorted(k.api_name for s in emulator.accounts.subs.values() for k in s.keys.values())


def bot_names(project: Path) -> list[str]:
    return [n for n in live_names(project) if ".Bot-" in n]


def live_api_keys(project: Path) -> set[str]:
    emulator = sandbox(project)
    return {k.api_key for s in emulator.accounts.subs.values() for k in s.keys.values()}


def bot_file_key(project: Path) -> str:
    return open_sink(SINK, project).read_current(ADDRESS).api_key


def audit_lines(project: Path, action: str) -> list[dict]:
    lines = (project / "state" / "audit.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["action"] == action]


def secrets_of(project: Path) -> list[str]:
    emulator = sandbox(project)
    return [k.secret for s in emulator.accounts.subs.values() for k in s.keys.values() if k.secret]


@pytest.fixture
def applied(project: Path) -> Path:
    write_plan(project)
    cli("apply", "--auto-approve")
    assert step_runs(project) == []  # a first key: no bot holds another one
    return project


def test_rotation_runs_reload_after_the_new_key_is_in_the_sink_then_deletes_the_old(applied):
    cli("rotate", "--label", "Bot", "--auto-approve")
    (run,) = step_runs(applied)
    env = run["env"]
    assert run["argv"] == ["reload"]
    assert env["ORCHESTRATOR_STEP"] == "reload"
    assert env["ORCHESTRATOR_LABEL"] == "Bot" and env["ORCHESTRATOR_SUBACCOUNT"] == "quant"
    assert env["ORCHESTRATOR_GENERATION"] == "2"
    assert env["ORCHESTRATOR_API_NAME"] == "orc-desk.Bot-g2"
    assert env["ORCHESTRATOR_SINK_KIND"] == "dotenv"
    assert env["ORCHESTRATOR_SINK_LOCATION"] == str(applied / "bots" / "bot.env")
    assert not [name for name in env if name.startswith("BINANCE_")]
    assert bot_names(applied) == ["orc-desk.Bot-g2"]
    entry = audit_lines(applied, "reload")[-1]
    assert entry["outcome"] == "ok"
    assert entry["detail"]["steps"][0]["exit_status"] == 0
    assert "reload done" in entry["detail"]["steps"][0]["output"]


def test_reload_output_and_environment_never_carry_a_secret(applied):
    cli("rotate", "--label", "Bot", "--auto-approve")
    fail_steps(applied)
    result = cli("rotate", "--label", "Bot", "--auto-approve", code=1)
    canaries = secrets_of(applied)
    assert canaries
    runs = step_runs(applied)
    texts = [
        result.output,
        json.dumps([r["env"] for r in runs]),
        (applied / "state" / "audit.jsonl").read_text(),
        (applied / "state" / "desk.state.json").read_text(),
    ]
    for canary in canaries:
        assert all(canary not in text for text in texts)
    outputs = [s["output"] for e in audit_lines(applied, "reload") for s in e["detail"]["steps"]]
    assert any("BINANCE_API_SECRET=[redacted]" in output for output in outputs)


def test_a_failing_reload_keeps_the_old_key_until_a_later_run_succeeds(applied):
    (g1,) = bot_names(applied)
    fail_steps(applied)
    result = cli("rotate", "--label", "Bot", "--auto-approve", code=1)
    assert "reload: exit status 3" in result.output
    assert bot_names(applied) == [g1, "orc-desk.Bot-g2"]  # the old key is still live
    assert bot_file_key(applied) in live_api_keys(applied)  # the bot's file holds g2

    plan = cli("plan", "--detailed-exitcode", code=2).output
    assert "reload   quant/Bot" in plan and f"{g1} waiting for bots to switch" in plan
    assert "reload failed" in plan and "exit status 3" in plan
    audit = cli("audit", "--json", code=None).output
    assert "reload_failed" in audit

    cli("apply", "--auto-approve", code=1)  # still failing: retried, still kept
    assert bot_names(applied) == [g1, "orc-desk.Bot-g2"]

    mend_steps(applied)
    cli("rotate", "--due", "--auto-approve")  # the scheduled run retries, then deletes
    assert bot_names(applied) == ["orc-desk.Bot-g2"]
    cli("plan", "--detailed-exitcode")


def test_reload_only_reruns_the_steps_for_the_current_key(applied):
    cli("rotate", "--label", "Bot", "--auto-approve")
    before = len(step_runs(applied))
    result = cli("rotate", "--reload-only", "--label", "Bot", "--auto-approve")
    assert "reload/check succeeded for orc-desk.Bot-g2" in result.output
    runs = step_runs(applied)
    assert len(runs) == before + 1 and runs[-1]["env"]["ORCHESTRATOR_GENERATION"] == "2"
    refused = cli("rotate", "--reload-only", "--label", "Plain", "--auto-approve", code=1)
    assert "no `reload:` or `check:`" in refused.output
    usage = cli("rotate", "--reload-only", "--due", code=1)
    assert "--reload-only takes the keys by --label" in usage.output


def test_a_failing_check_also_holds_the_old_key(project: Path):
    check = f"  check: [{json.dumps(sys.executable)}, {json.dumps(str(project / 'tools' / 'check.py'))}]\n"
    write_plan(project, extra=check)
    (project / "tools" / "check.py").write_text("import sys; print('bot not ready'); sys.exit(1)\n")
    cli("apply", "--auto-approve")
    result = cli("rotate", "--label", "Bot", "--auto-approve", code=1)
    assert "check: exit status 1" in result.output
    assert len(bot_names(project)) == 2
    (project / "tools" / "check.py").write_text("print('ok')\n")
    cli("rotate", "--reload-only", "--label", "Bot", "--auto-approve")
    assert bot_names(project) == ["orc-desk.Bot-g2"]


def test_a_hanging_reload_is_killed_at_its_timeout(project: Path):
    write_plan(project, extra="  reload_timeout: 1s\n")
    (project / "tools" / "reload.py").write_text("import time; time.sleep(60)\n")
    cli("apply", "--auto-approve")
    result = cli("rotate", "--label", "Bot", "--auto-approve", code=1)
    assert "timed out after 1s" in result.output
    assert len(bot_names(project)) == 2


def test_a_reload_that_cannot_start_is_a_failure_not_a_traceback(project: Path):
    write_plan(project)
    text = (project / "plans" / "example.yaml").read_text()
    (project / "plans" / "example.yaml").write_text(
        text.replace(json.dumps(sys.executable), json.dumps(str(project / "no-such-program")))
    )
    cli("apply", "--auto-approve")
    result = cli("rotate", "--label", "Bot", "--auto-approve", code=1)
    assert "cannot run" in result.output
    assert len(bot_names(project)) == 2


def test_with_a_grace_period_the_grace_starts_once_reload_succeeded(project: Path, monkeypatch):
    write_plan(project, grace="1h")
    monkeypatch.setenv("ORCHESTRATOR_NOW", "2026-01-01T00:00:00+00:00")
    cli("apply", "--auto-approve")
    fail_steps(project)
    cli("rotate", "--label", "Bot", "--auto-approve", code=1)
    monkeypatch.setenv("ORCHESTRATOR_NOW", "2026-01-01T05:00:00+00:00")
    mend_steps(project)
    cli("apply", "--auto-approve")  # reload succeeds at 05:00: grace until 06:00
    assert len(bot_names(project)) == 2
    monkeypatch.setenv("ORCHESTRATOR_NOW", "2026-01-01T05:59:00+00:00")
    cli("plan", "--detailed-exitcode")
    monkeypatch.setenv("ORCHESTRATOR_NOW", "2026-01-01T06:01:00+00:00")
    cli("apply", "--auto-approve")
    assert bot_names(project) == ["orc-desk.Bot-g2"]


def test_a_lost_state_runs_the_steps_again_before_any_delete(applied):
    (g1,) = bot_names(applied)
    cli("rotate", "--label", "Bot", "--auto-approve")  # g1 deleted at once (grace 0)
    write_plan(applied, grace="0s")
    text = (applied / "plans" / "example.yaml").read_text()
    (applied / "plans" / "example.yaml").write_text(text.replace("grace: 0s", "grace: 1h"))
    cli("rotate", "--label", "Bot", "--auto-approve")  # g2 in grace, g3 current
    assert bot_names(applied) == ["orc-desk.Bot-g2", "orc-desk.Bot-g3"]
    runs = len(step_runs(applied))
    (applied / "state" / "desk.state.json").unlink()
    (applied / "state" / "desk.state.json.backup").unlink(missing_ok=True)
    (applied / "plans" / "example.yaml").write_text(text)  # grace 0s again
    cli("apply", "--auto-approve")  # g2's grace starts when first seen; reload runs again
    assert len(step_runs(applied)) == runs + 1
    assert bot_names(applied) == ["orc-desk.Bot-g2", "orc-desk.Bot-g3"]
    cli("apply", "--auto-approve")  # the success is recorded now: g2 goes, no second reload
    assert len(step_runs(applied)) == runs + 1
    assert bot_names(applied) == ["orc-desk.Bot-g3"]
    assert g1 not in live_names(applied)


@pytest.mark.parametrize("point", ["after_reload", "after_reload_state"])
def test_a_kill_around_reload_never_deletes_the_old_key_before_a_recorded_success(applied, point):
    """kill -9 after reload succeeded: before state recorded it, the next run runs the steps
    again before deleting g1; after, it deletes g1 on the recorded success."""
    from tests.safety.safety_kit import run

    (g1,) = bot_names(applied)
    killed = run(applied, "rotate", "--label", "Bot", "--auto-approve", ORCHESTRATOR_CRASH_AT=point)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert bot_names(applied) == [g1, "orc-desk.Bot-g2"]
    assert bot_file_key(applied) in live_api_keys(applied)
    runs = len(step_runs(applied))
    done = run(applied, "apply", "--auto-approve")
    assert done.returncode == 0, done.stdout + done.stderr
    rerun = 1 if point == "after_reload" else 0
    assert len(step_runs(applied)) == runs + rerun
    assert bot_names(applied) == ["orc-desk.Bot-g2"]
    cli("plan", "--detailed-exitcode")


def test_a_failed_step_is_an_event_for_whoever_listens(applied):
    """Workspace.on_switch_failed is where a notification hooks on: one secret-free event per
    failed reload/check, naming the key and the generations kept."""
    import asyncio

    from orchestrator.cli.ui import TerminalUi
    from orchestrator.engine import operations
    from orchestrator.wiring import Wiring

    fail_steps(applied)
    events: list = []
    ws = Wiring().open_workspace(None, cwd=applied)
    ws.on_switch_failed = events.append
    outcome = asyncio.run(
        operations.rotate(
            ws, TerminalUi(), due=False, labels=["Bot"], auto_approve=True, break_stale=False
        )
    )
    assert outcome is not None and not outcome[1][0].ok
    (event,) = events
    assert (event.address, event.api_name, event.generation) == (ADDRESS, "orc-desk.Bot-g2", 2)
    assert event.reason == "reload: exit status 3" and event.kept == ("orc-desk.Bot-g1",)
