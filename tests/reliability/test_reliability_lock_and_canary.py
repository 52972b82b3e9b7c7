"""Two applies at once, a stale lock from a killed apply, and the canary: no secret that
reached a sink ever shows up in any output, state file, journal, changeset or audit log."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_kit import (
    build_scenario,
    check_invariants,
    clean_env,
    converge,
    copy_project,
    run,
    store_texts,
)

SLOW_APPLY = """
import sys
from orchestrator.cli import main
from orchestrator.emulator.core import Emulator
from orchestrator.wiring import Wiring, exchange_factory, open_sandbox

def slow(path):
    emu = open_sandbox(path)
    return Emulator(path, master=emu.master, persist_master=True, latency_ms=150)

sys.argv = ["orchestrator", "apply", "--auto-approve"]
main(Wiring(open_exchange=exchange_factory(slow)))
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory, backend) -> Path:
    return build_scenario(tmp_path_factory.mktemp(f"lock-{backend}") / "base", backend)


def test_two_concurrent_applies_one_proceeds_the_other_names_the_holder(base, tmp_path):
    project = copy_project(base, tmp_path / "p")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SLOW_APPLY],
            cwd=project,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.pid, *p.communicate(timeout=120), p.returncode) for p in procs]
    codes = sorted(r[3] for r in results)
    assert codes == [0, 1], results
    (winner,) = [r for r in results if r[3] == 0]
    (loser,) = [r for r in results if r[3] == 1]
    assert "is held by" in loser[2] and f"pid {winner[0]}" in loser[2], loser[2]
    assert "'apply'" in loser[2]
    planned = run(project, "plan", "--detailed-exitcode")
    # no changes; 3 because the scenario's out-of-band mystery-key can trade (spot)
    assert planned.returncode == 3 and "No changes" in planned.stdout, planned.stdout


def test_lock_of_a_killed_apply_is_taken_over_by_the_next_run_without_a_flag(base, tmp_path):
    import json

    project = copy_project(base, tmp_path / "p")
    crashed = run(project, "apply", "--auto-approve", ORCHESTRATOR_CRASH_AT="after_create")
    assert crashed.returncode == -signal.SIGKILL
    assert (project / "state" / "example.lock").exists()
    done = run(project, "apply", "--auto-approve")
    assert done.returncode == 0, done.stderr
    assert "recovered:" in done.stdout
    check_invariants(project, serial_before=0)
    events = [json.loads(line) for line in (project / "state" / "audit.jsonl").open()]
    (takeover,) = [e for e in events if e["action"] == "lock_takeover"]
    assert "'apply'" in takeover["detail"]["previous_holder"]


def test_scheduled_rotation_after_a_kill_proceeds_by_itself(base, tmp_path):
    project = copy_project(base, tmp_path / "p")
    run(project, "apply", "--auto-approve", ORCHESTRATOR_CRASH_AT="before_create")
    rotated = run(project, "rotate", "--due", "--auto-approve")
    assert rotated.returncode == 0, rotated.stderr
    assert "--break-stale-lock" not in rotated.stderr


# ---------------------------------------------------------------- the canary


def sink_secrets(project: Path) -> set[str]:
    """Every HMAC secret and Ed25519 private key in the sinks, in any slot. For a PEM, each
    base64 line of its body (the header lines are not secret)."""
    import json

    found: set[str] = set()

    def add(value: str) -> None:
        if "PRIVATE KEY" in value:
            found.update(
                line.strip() for line in value.splitlines() if line and "-----" not in line
            )
        elif value:
            found.add(value)

    for path in project.rglob("*"):
        if not path.is_file() or ".git" in path.parts or "state" in path.parts:
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".json" and "secrets" in path.parts:
            data = json.loads(text)
            for name in ("secret", "private_key"):
                if data.get(name):
                    add(data[name])
        elif "bots" in path.parts:
            if path.name.endswith(".pem"):
                add(text)
            for match in re.finditer(r"^BINANCE_API_SECRET=(.+)$", text, re.M):
                add(match.group(1).strip("'\""))
    return found


@pytest.mark.parametrize(
    "backend", ["local", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_canary_no_secret_in_any_output_or_record(base, tmp_path, chaos):
    project = copy_project(base, tmp_path / "p")
    outputs: list[str] = []
    seen: set[str] = set(sink_secrets(project))

    def step(*args: str, **env: str) -> None:
        done = run(project, *args, **env)
        outputs.append(done.stdout + done.stderr)
        seen.update(sink_secrets(project))

    step("plan")
    step("plan", "--json", "--out", "changeset.json")
    step(
        "-v", "apply", "changeset.json", "--auto-approve", ORCHESTRATOR_CRASH_AT="after_material#2"
    )
    step("-v", "apply", "--auto-approve")
    step("-v", "plan", "--json")
    step("state", "list")
    step("state", "show", "Koinly-Tax")
    step("state", "list", "--json")
    step("log", "verify")
    later = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 7200))
    step("-v", "apply", "--auto-approve", ORCHESTRATOR_NOW=later)
    step("-v", "audit", "--json")
    converge(project)
    assert len(seen) >= 10, "the canary must have caught the secrets of every generation"
    texts = outputs + store_texts(project) + [(project / "changeset.json").read_text()]
    leaks = [(i, s[:6]) for i, text in enumerate(texts) for s in seen if s in text]
    chaos.add("secret_leaks_found", len(leaks))
    assert not leaks, leaks
