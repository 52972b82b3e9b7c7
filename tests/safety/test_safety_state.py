"""State that is wrong about a sub-account never sends keys to the wrong one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.safety.safety_kit import bots_keys_work, live_keys, ok, run

pytestmark = [pytest.mark.safety, pytest.mark.local_files]


def test_a_virtual_subaccount_pointed_at_another_subaccount_gets_no_keys_there(project: Path):
    ok(project, "apply", "--auto-approve")
    path = project / "state" / "example.state.json"
    data = json.loads(path.read_text())
    data["subaccounts"]["copy"]["email"] = "quant@example.com"
    path.write_text(json.dumps(data))
    before = {k.api_key for k in live_keys(project) if k.email == "quant@example.com"}

    done = run(project, "apply", "--auto-approve")

    assert "Traceback" not in done.stdout + done.stderr
    after = {k.api_key for k in live_keys(project) if k.email == "quant@example.com"}
    assert after == before, done.stdout
    assert bots_keys_work(project)


def test_state_restore_records_what_the_live_account_proves_the_backup_missed(project: Path):
    ok(project, "apply", "--auto-approve")
    state_file = project / "state" / "example.state.json"
    before_rotation = state_file.read_bytes()
    ok(project, "rotate", "--auto-approve", "--label", "QuantBot-BTC")
    backup = project / "state" / "example.state.json.backup"
    backup.unlink(missing_ok=True)
    backup.write_bytes(before_rotation)

    restored = ok(project, "state", "restore")

    assert "QuantBot-BTC" in restored and "is the key bots read" in restored
    shown = ok(project, "state", "show", "QuantBot-BTC")
    assert "g2" in shown and "orc-example.QuantBot-BTC-g1" in shown
    assert bots_keys_work(project)
