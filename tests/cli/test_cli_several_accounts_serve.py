"""End to end: one plan with two master accounts, `apply` and `plan` as subprocesses against
`emulator serve --master fund2`, each account signed with its own credential variables and
proven from outside by listing keys through each master over HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orchestrator.config import init_project
from tests.cli.conftest import admin_headers, emulator_serve

PLAN = """\
version: 1
project: desk
exchange: {{kind: binance, endpoint: "{url}"}}
accounts:
  - name: main
    api_key_env: BINANCE_API_KEY
    secret_env: BINANCE_API_SECRET
  - name: fund2
    api_key_env: FUND2_API_KEY
    secret_env: FUND2_API_SECRET
defaults: {{secrets: "file:secrets/", key_type: hmac}}
subaccounts:
  - name: quant
    email: quant@example.com
    keys: [{{label: Quant, profile: read-only}}]
  - name: fundbot
    account: fund2
    email: fundbot@example.com
    keys: [{{label: Fund, profile: read-only}}, {{label: Fund2, profile: read-only}}]
"""


@pytest.fixture
def served(tmp_path: Path, env):
    with emulator_serve(tmp_path / "emu.json", env, "--master", "fund2") as found:
        yield found


def further_master(announced: str, name: str) -> tuple[str, str]:
    key = re.search(rf"master {name} key:\s+(\w+)", announced)
    secret = re.search(rf"master {name} secret:\s+(\w+)", announced)
    assert key and secret, announced
    return key.group(1), secret.group(1)


def run(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def listed_names(base_url: str, api_key: str, secret: str, email: str) -> list[str]:
    """apiNames of `email`'s keys, listed with a request the master signs itself."""
    import asyncio

    from pydantic import SecretStr

    from orchestrator.exchange.client import BinanceClient
    from orchestrator.exchange.signing import HmacSigner

    async def listing() -> list[str]:
        signer = HmacSigner(api_key, SecretStr(secret))
        async with BinanceClient(base_url, signer) as client:
            return sorted(k.api_name for k in await client.list_all_api_keys(email))

    return asyncio.run(listing())


def test_two_master_accounts_against_emulator_serve(tmp_path: Path, served, env, credentials):
    base_url, announced = served
    fund2_key, fund2_secret = further_master(announced, "fund2")
    admin = admin_headers(announced)
    for email, master in (("quant@example.com", None), ("fundbot@example.com", "fund2")):
        made = httpx.post(
            f"{base_url}/_emulator/subaccount",
            json={"email": email, "master": master} if master else {"email": email},
            headers=admin,
        )
        assert made.status_code == 200, made.text
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    init_project(project)
    (project / "plans" / "example.yaml").unlink()
    (project / "plans" / "desk.yaml").write_text(PLAN.format(url=base_url))

    missing = run(project, env, "plan")
    assert missing.returncode == 1
    assert "[fund2] Error: account fund2 (plans/desk.yaml:8:5): FUND2_API_KEY is not set" in (
        missing.stderr
    )
    assert "== account main ==" in missing.stdout  # the other account still planned

    both = {**env, "FUND2_API_KEY": fund2_key, "FUND2_API_SECRET": fund2_secret}
    applied = run(project, both, "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "[main] Apply complete: 1 done, 0 failed." in applied.stdout
    assert "[fund2] Apply complete: 2 done, 0 failed." in applied.stdout

    main_key, main_secret = credentials["BINANCE_API_KEY"], credentials["BINANCE_API_SECRET"]
    assert listed_names(base_url, main_key, main_secret, "quant@example.com") == [
        "orc-desk.Quant-g1"
    ]
    assert listed_names(base_url, fund2_key, fund2_secret, "fundbot@example.com") == [
        "orc-desk.Fund-g1",
        "orc-desk.Fund2-g1",
    ]
    with pytest.raises(Exception, match="sub-account"):  # not main's sub-account
        listed_names(base_url, main_key, main_secret, "fundbot@example.com")

    planned = run(project, both, "plan", "--json", "--detailed-exitcode")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    entries = json.loads(planned.stdout)["accounts"]
    assert [(e["account"], e["changes"]) for e in entries] == [("main", False), ("fund2", False)]
    # each account on its own client: fund2 read its own sub-account's two keys
    assert entries[1]["calls"]["list_api_keys"] == 1
    assert entries[1]["calls"]["get_ip_restriction"] == 2

    secrets = [json.loads(p.read_text())["secret"] for p in (project / "secrets").rglob("*.json")]
    assert len(secrets) == 3
    texts = [applied.stdout, applied.stderr, planned.stdout, announced]
    texts += [p.read_text() for p in (project / "state").glob("*.json*")]
    assert not any(s in t for s in [*secrets, fund2_secret, main_secret] for t in texts[:3])
    assert not any(s in t for s in secrets for t in texts)
