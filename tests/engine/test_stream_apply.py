"""apply --auto-approve streams: a sub-account's creates start while others are still listed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.emulator.core import Emulator
from orchestrator.emulator.master import generate_master
from orchestrator.wiring import Wiring

SUBACCOUNTS = 125  # key listings for more than two 2 s windows (60 each): the last wait 2 s or more


def plan_text() -> str:
    lines = ["version: 1", "exchange: {kind: sandbox, rate_window_s: 2.0}", "subaccounts:"]
    for i in range(SUBACCOUNTS):
        lines += [
            f"  - name: s{i}",
            f"    email: s{i}@example.com",
            "    keys:",
            "      - label: tax",
            "        profile: read-only",
            "        ips: []",
        ]
    return "\n".join(lines) + "\n"


def test_creates_overlap_the_listing_of_other_subaccounts(tmp_path: Path, monkeypatch):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "many.yaml").write_text(plan_text())
    (tmp_path / ".gitignore").write_text("state/\nsecrets/\n")
    monkeypatch.chdir(tmp_path)
    emulator = Emulator(
        tmp_path / "state" / "sandbox.json",
        time_scale=60,
        master=generate_master(0),
        persist_master=True,
    )
    order: list[str] = []
    handle = emulator.handle
    monkeypatch.setattr(
        emulator, "handle", lambda r: order.append(f"{r.method} {r.path}") or handle(r)
    )

    result = CliRunner().invoke(
        app, ["apply", "--auto-approve"], catch_exceptions=False, obj=Wiring.with_sandbox(emulator)
    )

    assert result.exit_code == 0, result.output
    lists = [i for i, call in enumerate(order) if call == "GET /sapi/v1/sub-account/subAccountApi"]
    creates = [
        i for i, call in enumerate(order) if call == "POST /sapi/v1/sub-account/subAccountApi"
    ]
    assert len(lists) == len(creates) == SUBACCOUNTS
    assert creates[0] < lists[-1]
    assert f"Plan: {SUBACCOUNTS} to create" in result.output
