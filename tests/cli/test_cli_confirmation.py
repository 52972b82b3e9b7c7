"""Confirmation the Terraform way: the answer is read from stdin, terminal or not, and only
`yes` goes ahead; a saved changeset applies without asking. What happened is read from the
exchange (the emulator), not from the tool's own state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.cli_kit import add_unmanaged_key, live_keys, live_names, run

PLANNED = [
    "orc-example.CopyTrade-Bot-g1",
    "orc-example.Koinly-Tax-g1",
    "orc-example.QuantBot-BTC-g1",
]


def test_piped_yes_applies(project: Path):
    """`echo yes | orchestrator apply`, as a real pipe: stdin is not a terminal."""
    ran = subprocess.run(
        [sys.executable, "-m", "orchestrator", "apply"],
        input="yes\n",
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Only 'yes' will be accepted" in ran.stdout
    assert "Apply complete: 4 done, 0 failed." in ran.stdout
    assert live_names(project) == PLANNED


@pytest.mark.parametrize("answer", ["no\n", "YES\n", "y\n", " yes\n", "yes please\n", "\n"])
def test_any_answer_but_yes_cancels_and_changes_nothing(project: Path, answer):
    refused = run("apply", stdin=answer, code=1)
    assert "Apply cancelled: the answer was not 'yes'" in refused.output
    assert "--auto-approve" in refused.output
    assert live_names(project) == []
    assert not (project / "state" / "example.state.json").exists()
    assert not list((project / "secrets").rglob("*.json"))


def test_end_of_input_cancels_with_a_clear_message(project: Path):
    refused = run("apply", stdin=None, code=1)
    assert "Apply cancelled: no answer came (end of input)" in refused.output
    assert "echo yes" in refused.output and "--auto-approve" in refused.output
    assert live_names(project) == []


def test_a_saved_changeset_applies_without_asking(project: Path):
    run("plan", "--out", "cs.json")
    applied = run("apply", "cs.json", stdin=None)
    assert "Only 'yes' will be accepted" not in applied.output
    assert "Apply complete: 4 done, 0 failed." in applied.output
    assert live_names(project) == PLANNED


def test_a_saved_changeset_applies_when_the_project_id_is_not_the_file_name(project: Path):
    plan = project / "plans" / "example.yaml"
    plan.write_text(plan.read_text().replace("project: example", "project: desk1"))
    run("plan", "--out", "cs.json")
    applied = run("apply", "cs.json", stdin=None)
    assert "Apply complete: 4 done, 0 failed." in applied.output
    assert live_names(project) == [name.replace("example", "desk1") for name in PLANNED]


def test_rotate_asks_and_reads_the_answer_from_stdin(project: Path):
    run("apply", "--auto-approve")
    before = live_names(project)
    declined = run("rotate", "--label", "QuantBot-BTC", stdin="no\n", code=1)
    assert "Rotation cancelled: the answer was not 'yes'" in declined.output
    assert live_names(project) == before
    run("rotate", "--label", "QuantBot-BTC", stdin="yes\n")
    assert "orc-example.QuantBot-BTC-g2" in live_names(project)


def test_lockdown_prompt_lists_every_key_it_will_delete(project: Path):
    run("apply", "--auto-approve")
    stranger = add_unmanaged_key(project)
    keys = live_keys(project)
    declined = run("lockdown", "--all", stdin="no\n", code=1)
    shown = declined.output
    assert "Lockdown: 4 API key(s) in 2 sub-account(s) will be deleted" in shown
    for api_key, (email, api_name) in keys.items():
        line = next(ln for ln in shown.splitlines() if api_name in ln)
        assert f"{api_key[:4]}…" in line, line  # a short prefix names the key...
        assert api_key not in shown  # ...never the whole of it
        assert email in shown
    assert "managed as quant/QuantBot-BTC" in shown
    stranger_line = next(ln for ln in shown.splitlines() if "mystery-key" in ln)
    assert "not managed" in stranger_line and stranger[:4] in stranger_line
    assert "Lockdown cancelled: the answer was not 'yes'" in shown
    assert "--yes" in shown
    assert live_keys(project) == keys  # declined: every key is still live

    run("lockdown", "--all", "--subaccount", "quant", stdin="yes\n")
    assert live_names(project) == ["orc-example.CopyTrade-Bot-g1"]
