"""State that is wrong about a sub-account never sends keys to the wrong one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.safety.safety_kit import bots_keys_work, live_keys, ok, run

pytestmark = pytest.mark.safety


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
