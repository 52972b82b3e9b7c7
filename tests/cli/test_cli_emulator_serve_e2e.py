"""End to end: `orchestrator apply` and `plan` as subprocesses against `orchestrator emulator
serve` (also a subprocess) on loopback, with master credentials from the environment."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orchestrator.config import init_project
from tests.cli.conftest import admin_headers, token


@pytest.fixture
def project(tmp_path: Path, server) -> Path:
    base_url, _ = server
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    init_project(root)
    plan = root / "plans" / "example.yaml"
    text = plan.read_text()
    text = re.sub(r"(?m)^  kind: sandbox.*$", f"  kind: binance\n  endpoint: {base_url}", text)
    # one system-generated key too, so an HMAC secret travels back over HTTP
    text = text.replace(
        "        profile: read-only\n", "        profile: read-only\n        key_type: hmac\n", 1
    )
    plan.write_text(text)
    return root


def run(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def sink_secrets(project: Path) -> list[str]:
    """Every secret in the sink files: HMAC secrets whole, private keys by their PEM body."""
    found = []
    for path in (project / "secrets").rglob("*.json"):
        data = json.loads(path.read_text())
        if data.get("secret"):
            found.append(data["secret"])
        if data.get("private_key"):
            body = "".join(
                ln for ln in data["private_key"].splitlines() if not ln.startswith("-----")
            )
            found.append(body)
    return found


def test_apply_then_plan_against_emulator_serve(project: Path, server, env, credentials):
    base_url, announced = server
    assert credentials["BINANCE_API_SECRET"] not in announced
    validated = run(project, env, "validate")
    assert validated.returncode == 0, validated.stderr

    # an existing sub-account is made in the web UI, never through the API
    added = httpx.post(
        f"{base_url}/_emulator/subaccount",
        json={"email": "quant@example.com"},
        headers=admin_headers(announced),
    )
    assert added.status_code == 200, added.text

    applied = run(project, env, "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete: 4 done, 0 failed." in applied.stdout

    planned = run(project, env, "plan", "--detailed-exitcode")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "No changes" in planned.stdout
    as_json = run(project, env, "plan", "--json")
    assert as_json.returncode == 0, as_json.stderr
    calls = json.loads(as_json.stdout)["calls"]
    assert calls == {"get_ip_restriction": 3, "list_api_keys": 2, "list_subaccounts": 1}

    outputs = [validated, applied, planned, as_json]
    for result in outputs:
        assert "Traceback" not in result.stderr
        assert "\x1b[" not in result.stdout + result.stderr  # piped: plain text

    sink_files = [p for p in (project / "secrets").rglob("*") if p.is_file()]
    assert len(sink_files) == 3
    for path in (project / "secrets").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))

    found = sink_secrets(project)
    assert len(found) == 3
    texts = [r.stdout + r.stderr for r in outputs]
    texts += [p.read_text() for p in (project / "state").iterdir() if p.is_file()]
    texts.append(announced)
    for secret in [*found, credentials["BINANCE_API_SECRET"]]:
        assert not any(secret in text for text in texts)
    assert not (project / "state" / "sandbox.json").exists()  # the sandbox was never used


def test_wrong_master_secret_fails_with_a_hint_and_no_traceback(project: Path, server, env):
    wrong = {**env, "BINANCE_API_SECRET": token()}
    refused = run(project, wrong, "plan")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "-1022" in refused.stderr and "BINANCE_API_SECRET" in refused.stderr
    assert wrong["BINANCE_API_SECRET"] not in refused.stdout + refused.stderr
