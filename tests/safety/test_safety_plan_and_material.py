"""plan only reads, even with a crashed run's journal open; and no secret of a deleted key is
left anywhere in the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.safety.safety_kit import (
    bots_keys_work,
    edit_plan,
    file_bytes,
    keys_without_material,
    live_api_keys,
    material_of_dead_keys,
    ok,
    run,
    sink_secrets,
)

pytestmark = pytest.mark.safety


def test_plan_after_a_crash_changes_nothing_and_apply_reconciles(project: Path):
    ok(project, "apply", "--auto-approve")
    killed = run(
        project,
        "rotate",
        "--auto-approve",
        "--label",
        "QuantBot-BTC",
        ORCHESTRATOR_CRASH_AT="after_create",
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    for lock in (project / "state").glob("*.lock"):
        lock.unlink()  # so that plan gets as far as the journal whatever locking does
    files_before, live_before = file_bytes(project), live_api_keys(project)

    planned = run(project, "plan")
    assert planned.returncode == 0, planned.stdout + planned.stderr

    assert live_api_keys(project) == live_before
    files_after = file_bytes(project)
    changed = sorted(
        p
        for p in files_before.keys() | files_after.keys()
        if files_before.get(p) != files_after.get(p)
    )
    assert not changed, f"plan wrote {changed}"

    ok(project, "apply", "--auto-approve", "--break-stale-lock")
    assert bots_keys_work(project)
    assert not keys_without_material(project)
    assert "No changes" in ok(project, "plan")


def test_no_secret_of_a_deleted_key_remains_after_rotation_and_lockdown(project: Path):
    with open(project / ".gitignore", "a", encoding="utf-8") as ignore:
        ignore.write("bots/\n")
    edit_plan(project, "grace: 1h", "grace: 0s")
    edit_plan(
        project,
        "        ips: [198.51.100.7]\n",
        "        ips: [198.51.100.7]\n"
        "        key_type: hmac\n        secrets: dotenv:bots/copytrade.env\n",
    )
    ok(project, "apply", "--auto-approve")
    seen = sink_secrets(project)

    for label in ("QuantBot-BTC", "CopyTrade-Bot"):
        ok(project, "rotate", "--auto-approve", "--label", label)
    assert bots_keys_work(project)
    assert not material_of_dead_keys(project, seen)

    seen |= sink_secrets(project)
    ok(project, "lockdown", "--all", "--yes")
    assert not live_api_keys(project)
    assert not material_of_dead_keys(project, seen)
