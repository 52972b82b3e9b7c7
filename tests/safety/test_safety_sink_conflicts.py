"""Everything apply would refuse about sinks is a plan error, at the line that names the sink,
found before anything changes: apply never stops half-way on a sink it cannot write."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.safety.safety_kit import (
    bots_keys_work,
    edit_plan,
    file_bytes,
    live_api_keys,
    ok,
    run,
)

pytestmark = pytest.mark.safety

QUANT = "        profile: quant               # read + spot + futures\n"
TAX = "        ips: []                      # read-only keys may go without a whitelist\n"
COPY = "        ips: [198.51.100.7]\n"


def problem_lines(output: str) -> dict[str, str]:
    """`plans/example.yaml:LINE:COL: path: message` lines, by key path."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"plans/example\.yaml:(\d+):(\d+): (\S+): (.*)", line)
        if match:
            found[match[3]] = f"{match[1]}:{match[2]} {match[4]}"
    return found


def unwritable_plan(project: Path) -> None:
    """The last key shares the first's dotenv file; the second writes where git would
    commit it."""
    edit_plan(project, QUANT, QUANT + "        secrets: dotenv:secrets/quant.env\n")
    edit_plan(project, TAX, TAX + "        secrets: dotenv:bots/tax.env\n")
    edit_plan(project, COPY, COPY + "        secrets: dotenv:secrets/./quant.env\n")


def line_of(project: Path, text: str) -> int:
    lines = (project / "plans" / "example.yaml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


def test_validate_and_plan_name_each_refused_sink_with_file_line_col(project: Path):
    unwritable_plan(project)
    for command in ("validate", "plan"):
        done = run(project, command)
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert "Traceback" not in output
        found = problem_lines(output)
        tax = found["subaccounts[0].keys[1].secrets"]
        assert tax.startswith(f"{line_of(project, 'dotenv:bots/tax.env')}:18 ")
        assert "git does not ignore it" in tax
        copy = found["subaccounts[1].keys[0].secrets"]
        assert copy.startswith(f"{line_of(project, 'secrets/./quant.env')}:18 ")
        assert "quant/QuantBot-BTC" in copy
        assert "subaccounts[0].keys[0].secrets" not in found
    assert not (project / "state" / "sandbox.json").exists()  # the exchange was never opened


def test_apply_refuses_before_any_change(project: Path):
    unwritable_plan(project)
    before = file_bytes(project)
    done = run(project, "apply", "--auto-approve")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bots/tax.env" in done.stderr and "quant/QuantBot-BTC" in done.stderr
    assert not (project / "state" / "sandbox.json").exists()
    assert file_bytes(project) == before


def test_a_sink_edit_that_apply_would_trip_on_leaves_a_working_project_untouched(project: Path):
    ok(project, "apply", "--auto-approve")
    live, files = live_api_keys(project), file_bytes(project)
    edit_plan(project, COPY, COPY + "        secrets: dotenv:bots/copy.env\n")
    for args in (["plan"], ["apply", "--auto-approve"], ["rotate", "--due", "--auto-approve"]):
        done = run(project, *args)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "bots/copy.env" in done.stderr and "does not ignore it" in done.stderr
    assert live_api_keys(project) == live
    assert file_bytes(project) == files
    edit_plan(project, COPY + "        secrets: dotenv:bots/copy.env\n", COPY)
    assert bots_keys_work(project)
