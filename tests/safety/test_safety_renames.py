"""Renaming a label never leaves a bot without a working key: with `moved:` the key is kept,
without it the new key is stored before the old one is deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.safety.safety_kit import (
    PlannedKey,
    bot_material,
    bots_keys_work,
    edit_plan,
    live_api_keys,
    ok,
    run,
)

pytestmark = pytest.mark.safety
OLD, NEW = "CopyTrade-Bot", "CopyTrade-Main"
BOT_FILE = "dotenv:bots/copytrade.env"


def dotenv_project(project: Path) -> str:
    """The example plan with the copy key in a bot's dotenv file and prune on; its api key
    once applied."""
    with open(project / ".gitignore", "a", encoding="utf-8") as ignore:
        ignore.write("bots/\n")
    edit_plan(project, "    virtual: copytrade ", "    prune: true\n    virtual: copytrade ")
    edit_plan(
        project,
        "        ips: [198.51.100.7]\n",
        f"        ips: [198.51.100.7]\n        secrets: {BOT_FILE}\n",
    )
    ok(project, "apply", "--auto-approve")
    assert bots_keys_work(project)
    return bot_api_key(project, OLD)


def bot_api_key(project: Path, label: str) -> str | None:
    handed = bot_material(project, PlannedKey("copy", label, BOT_FILE, ()))
    return handed.api_key if handed else None


def rename(project: Path) -> None:
    edit_plan(project, f"label: {OLD}", f"label: {NEW}")


def test_a_moved_label_keeps_its_key_and_the_bots_file(project: Path):
    kept = dotenv_project(project)
    rename(project)
    edit_plan(
        project, "    prune: true\n", f"    prune: true\n    moved: [{{from: {OLD}, to: {NEW}}}]\n"
    )

    output = ok(project, "plan")
    lines = [line for line in output.splitlines() if "copy/" in line]
    assert any("rename" in line.lower() or "move" in line.lower() for line in lines), output
    assert not [line for line in lines if "create" in line or "delete" in line], output
    assert bots_keys_work(project)

    ok(project, "apply", "--auto-approve")
    assert kept in live_api_keys(project)
    assert bot_api_key(project, NEW) == kept
    assert bots_keys_work(project)


def test_a_plain_rename_stores_the_new_key_before_deleting_the_old(project: Path):
    old = dotenv_project(project)
    rename(project)

    killed = run(project, "apply", "--auto-approve", ORCHESTRATOR_CRASH_AT="after_delete")
    output = killed.stdout + killed.stderr
    assert killed.returncode in (0, -9), output
    assert bots_keys_work(project), output

    ok(project, "apply", "--auto-approve", "--break-stale-lock")
    assert bots_keys_work(project)
    assert old not in live_api_keys(project)
    assert bot_api_key(project, NEW) in live_api_keys(project)
