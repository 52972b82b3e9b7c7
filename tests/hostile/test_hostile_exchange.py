"""Hostile exchange answers (malformed JSON, missing fields, wrong types, huge bodies) end in
a clear error, exit 1, no traceback and no partial state."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
import respx
from typer.testing import CliRunner

from orchestrator.cli import app

BASE = "https://api.binance.com"
CANARY_SECRET = "CANARYsecretCANARYsecretCANARYsecretCANARYsecretCANARYsecret0001"
PLAN = """\
version: 1
exchange: {kind: binance}
defaults: {secrets: "file:secrets/"}
subaccounts:
  - name: quant
    email: quant@example.com
    keys:
      - label: Bot
        permissions: [read, spot]
        ips: [203.0.113.10]
"""
SUBS = {
    "subAccounts": [
        {
            "email": "quant@example.com",
            "subUserId": 1,
            "isFreeze": False,
            "createTime": 1,
            "isManagedSubAccount": False,
            "isAssetManagementSubAccount": False,
        }
    ]
}

HOSTILE = {
    "not json": httpx.Response(200, content=b"<html>gateway</html>"),
    "wrong shape": httpx.Response(200, json=["a", "b"]),
    "missing field": httpx.Response(200, json={"total": 1, "rows": [{"apiName": "x"}]}),
    "wrong type": httpx.Response(200, json={"total": "many", "rows": "none"}),
    "huge body": httpx.Response(200, content=b"[" + b"1," * 3_000_000 + b"1]"),
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "live.yaml").write_text(PLAN)
    (tmp_path / ".gitignore").write_text("state/\nsecrets/\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BINANCE_API_KEY", "K" * 64)
    monkeypatch.setenv("BINANCE_API_SECRET", CANARY_SECRET)
    monkeypatch.delenv("BINANCE_PRIVATE_KEY_FILE", raising=False)
    return tmp_path


def run(*args):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    assert CANARY_SECRET not in result.output
    return result


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_key_listing_fails_plan_cleanly(project: Path, kind: str, chaos):
    chaos.add("bad_inputs_tried")
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.get("/sapi/v1/sub-account/list").respond(json=SUBS)
        mock.get("/sapi/v1/sub-account/subAccountApi").mock(return_value=HOSTILE[kind])
        result = run("plan")
    assert result.exit_code == 1
    assert "Error:" in result.output
    assert not (project / "state" / "live.state.json").exists()
    chaos.add("bad_inputs_refused_cleanly")


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_create_answer_leaves_no_partial_state(project: Path, kind: str, chaos):
    chaos.add("bad_inputs_tried")
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.get("/sapi/v1/sub-account/list").respond(json=SUBS)
        mock.get("/sapi/v1/sub-account/subAccountApi").respond(json={"total": 0, "rows": []})
        mock.post("/sapi/v1/sub-account/subAccountApi").mock(return_value=HOSTILE[kind])
        result = run("apply", "--auto-approve")
    assert result.exit_code == 1
    state = project / "state" / "live.state.json"
    if state.exists():  # whatever was written must not claim a key that was never confirmed
        assert json.loads(state.read_text())["keys"] == {}
    pending = (
        list((project / "secrets").rglob("*.pending.json"))
        if (project / "secrets").exists()
        else []
    )
    assert all("Bot" in p.name for p in pending)
    chaos.add("bad_inputs_refused_cleanly")
