"""Two hosts, one account, one PostgreSQL store: the advisory lock lets one apply run and
names it to the other; a holder killed with -9 loses the lock with its session, and the next
run proceeds without any flag (the dead run's holder row is reported in the audit log)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_kit import (
    build_scenario,
    check_invariants,
    clean_env,
    copy_project,
    run,
    store_of,
)

pytestmark = pytest.mark.postgres

#: an apply whose every exchange call takes 150 ms, so a second run meets it holding the lock
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
def base(tmp_path_factory) -> Path:
    return build_scenario(tmp_path_factory.mktemp("pg-lock") / "base", "postgres")


def test_two_hosts_apply_at_once_one_runs_and_the_other_names_it(base, tmp_path):
    project = copy_project(base, tmp_path / "p")
    procs = {
        host: subprocess.Popen(
            [sys.executable, "-c", SLOW_APPLY],
            cwd=project,
            env=clean_env(ORCHESTRATOR_HOSTNAME=host),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host in ("runner-a", "runner-b")
    }
    results = {
        host: (p.pid, *p.communicate(timeout=180), p.returncode) for host, p in procs.items()
    }
    codes = sorted(r[3] for r in results.values())
    assert codes == [0, 1], results
    (winner,) = [host for host, r in results.items() if r[3] == 0]
    (loser,) = [host for host, r in results.items() if r[3] == 1]
    refusal = results[loser][2]
    assert f"@{winner} (pid {results[winner][0]})" in refusal, refusal
    assert "running 'apply'" in refusal and "since" in refusal
    assert "Traceback" not in refusal


def test_a_killed_holder_lets_the_other_host_proceed_without_a_flag(base, tmp_path):
    project = copy_project(base, tmp_path / "p")
    crashed = run(
        project,
        "apply",
        "--auto-approve",
        ORCHESTRATOR_CRASH_AT="after_create",
        ORCHESTRATOR_HOSTNAME="runner-a",
    )
    assert crashed.returncode == -signal.SIGKILL
    with store_of(project) as store:
        left = store.lock("example", "apply").holder()
    assert left is not None and left.host == "runner-a"  # the dead run's row is still there
    done = run(project, "apply", "--auto-approve", ORCHESTRATOR_HOSTNAME="runner-b")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--break-stale-lock" not in done.stdout + done.stderr
    assert "recovered:" in done.stdout
    check_invariants(project, serial_before=0)
    with store_of(project) as store:
        events = [e for e in _audit_events(store) if e["action"] == "lock_takeover"]
        assert store.lock("example", "apply").holder() is None
    (takeover,) = events
    assert "@runner-a" in takeover["detail"]["previous_holder"]
    assert takeover["host"] == "runner-b"


def _audit_events(store) -> list[dict]:
    import json

    with store.store.tx() as conn:
        rows = conn.execute(store.store.q("SELECT line FROM {t} ORDER BY seq", t="audit"))
        return [json.loads(line) for (line,) in rows.fetchall()]
