"""`accounts:`: several master accounts in one plan, each with its own credential variables,
state id and sub-accounts; a plan without it reads as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import PlanError, Problem, UnknownAccount, load_plan

TWO_ACCOUNTS = """\
version: 1
project: desk
exchange: {kind: binance, endpoint: "http://127.0.0.1:8765"}
accounts:
  - name: main
    api_key_env: BINANCE_API_KEY
    secret_env: BINANCE_API_SECRET
  - name: fund2
    api_key_env: FUND2_API_KEY
    private_key_file_env: FUND2_PRIVATE_KEY_FILE
    passphrase_env: FUND2_PASSPHRASE
subaccounts:
  - name: quant
    email: quant@example.com
    keys: [{label: Quant, profile: read-only}]
  - name: fundbot
    account: fund2
    email: fundbot@example.com
    keys: [{label: Fund, profile: read-only}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "desk.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    with pytest.raises(PlanError) as caught:
        load_plan(write(tmp_path, text))
    return [p for p in caught.value.problems if p.is_error]


def test_each_account_gets_its_subaccounts_state_id_and_variables(tmp_path):
    plan = load_plan(write(tmp_path, TWO_ACCOUNTS))
    assert plan.account_names == ("main", "fund2")
    main, fund2 = plan.per_account()
    assert (main.name, fund2.name) == ("desk@main", "desk@fund2")
    assert [s.name for s in main.desired.subaccounts] == ["quant"]
    assert [s.name for s in fund2.desired.subaccounts] == ["fundbot"]
    # the apiName owner stays the project, whatever the account
    assert {k.owner for k in fund2.desired.keys()} == {"desk"}
    assert main.exchange.credentials.api_key == "BINANCE_API_KEY"
    creds = fund2.exchange.credentials
    assert (creds.api_key, creds.secret, creds.private_key_file, creds.passphrase) == (
        "FUND2_API_KEY",
        None,
        "FUND2_PRIVATE_KEY_FILE",
        "FUND2_PASSPHRASE",
    )
    assert creds.where.startswith("account fund2 (") and creds.where.endswith("desk.yaml:8:5)")
    assert fund2.exchange.account == "fund2" and fund2.exchange.endpoint == main.exchange.endpoint
    assert [p.name for p in plan.per_account(["fund2"])] == ["desk@fund2"]
    with pytest.raises(UnknownAccount, match="fund3: .*accounts: main, fund2"):
        plan.per_account(["fund3"])


def test_a_plan_without_accounts_is_one_account_named_by_the_project(tmp_path):
    plan = load_plan(write(tmp_path, "version: 1\nproject: desk\n"))
    assert plan.accounts == () and plan.per_account() == [plan] and plan.name == "desk"
    assert plan.exchange.credentials.api_key == "BINANCE_API_KEY"
    with pytest.raises(UnknownAccount, match="no `accounts:`"):
        plan.per_account(["main"])


def test_unknown_and_duplicate_accounts_are_errors_with_positions(tmp_path):
    text = TWO_ACCOUNTS.replace("account: fund2", "account: fund3").replace(
        "name: main", "name: fund2"
    )
    found = {(p.path, p.line): p.message for p in problems_of(tmp_path, text)}
    assert found[("accounts[1].name", 8)] == "duplicate account name 'fund2' (also accounts[0])"
    assert found[("subaccounts[1].account", 17)] == "unknown account 'fund3'"


def test_an_email_in_two_accounts_is_an_error(tmp_path):
    text = TWO_ACCOUNTS.replace("fundbot@example.com", "quant@example.com")
    (problem,) = [p for p in problems_of(tmp_path, text) if p.path == "subaccounts[1].email"]
    assert "already used by subaccounts[0] of account 'main'" in problem.message
    assert "not also to 'fund2'" in problem.message and problem.line == 18


def test_credential_variables_are_checked(tmp_path):
    text = (
        TWO_ACCOUNTS.replace("    api_key_env: FUND2_API_KEY\n", "")
        .replace("FUND2_PASSPHRASE", "BINANCE_API_SECRET")
        .replace("secret_env: BINANCE_API_SECRET", "secret_env: not a name")
    )
    found = {p.path: p.message for p in problems_of(tmp_path, text)}
    assert "not an environment variable name" in found["accounts[0].secret_env"]
    assert found["accounts[1]"].startswith("account has no `api_key_env`")
    both = TWO_ACCOUNTS.replace(
        "    passphrase_env: FUND2_PASSPHRASE\n", "    secret_env: FUND2_API_SECRET\n"
    )
    (problem,) = problems_of(tmp_path, both)
    assert problem.path == "accounts[1].private_key_file_env" and "not both" in problem.message
    shared = TWO_ACCOUNTS.replace("FUND2_API_KEY", "BINANCE_API_KEY")
    (problem,) = problems_of(tmp_path, shared)
    assert problem.message == "BINANCE_API_KEY is already named by accounts[0].api_key_env"


def test_the_sandbox_needs_no_credential_variables(tmp_path):
    plan = load_plan(
        write(
            tmp_path,
            "version: 1\naccounts: [{name: a}, {name: b}]\n"
            "subaccounts:\n  - {name: x, virtual: x, account: b}\n  - {name: y, virtual: x}\n",
        )
    )
    assert [[s.name for s in p.desired.subaccounts] for p in plan.per_account()] == [["y"], ["x"]]


def test_account_without_accounts_list_and_empty_list(tmp_path):
    found = {
        p.path: p.message
        for p in problems_of(
            tmp_path, "version: 1\nsubaccounts:\n  - {name: x, virtual: x, account: b}\n"
        )
    }
    assert "the plan has no `accounts:`" in found["subaccounts[0].account"]
    (problem,) = problems_of(tmp_path, "version: 1\naccounts: []\n")
    assert problem.message == "`accounts:` is empty"
