"""`orchestrator validate`, `schema` and `init` through typer's CliRunner."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network call attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_init_then_validate_passes_without_network(project, no_network):
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    assert (project / "plans" / "example.yaml").is_file()
    assert (project / "state").is_dir() and (project / "secrets").is_dir()
    assert (project / ".gitignore").read_text().splitlines() == ["state/", "secrets/"]
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "plans/example.yaml: valid (2 sub-accounts, 3 keys)"


def test_init_keeps_existing_files(project):
    (project / "plans").mkdir()
    (project / "plans" / "example.yaml").write_text("mine\n")
    (project / ".gitignore").write_text("*.pyc")
    result = runner.invoke(app, ["init", "."])
    assert result.exit_code == 0
    assert "kept" in result.output and "updated" in result.output
    assert (project / "plans" / "example.yaml").read_text() == "mine\n"
    assert (project / ".gitignore").read_text() == "*.pyc\nstate/\nsecrets/\n"


def test_init_into_a_new_directory(project):
    result = runner.invoke(app, ["init", "proj"])
    assert result.exit_code == 0
    assert "cd proj" in result.output
    assert (project / "proj" / "plans" / "example.yaml").is_file()


def test_validate_prints_every_problem_and_exits_1(project, no_network):
    (project / "plans").mkdir()
    (project / "plans" / "bad.yaml").write_text(
        "version: 1\nsubaccounts:\n  - name: a\n    email: a@example.com\n    keys:\n"
        "      - label: k\n        profile: quant\n        ips: [10.0.0.1, '::1']\n"
    )
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    assert "plans/bad.yaml:8:15: subaccounts[0].keys[0].ips[0]: '10.0.0.1' is a private" in (
        result.output
    )
    assert "plans/bad.yaml:8:25: subaccounts[0].keys[0].ips[1]: '::1' is an IPv6" in result.output
    assert "2 error(s)" in result.output
    assert "Traceback" not in result.output


def test_validate_prints_warnings_and_exits_0(project):
    (project / "p.yaml").write_text(
        "version: 1\nsubaccounts:\n  - name: a\n    virtual: a1\n    keys:\n"
        "      - {label: k, ips: [203.0.113.10], permissions: [universal_transfer]}\n"
    )
    result = runner.invoke(app, ["validate", "p.yaml"])
    assert result.exit_code == 0
    assert "p.yaml:6:" in result.output and "warning: `universal_transfer`" in result.output
    assert "p.yaml: valid (1 sub-accounts, 1 keys)" in result.output


def test_global_plan_option_is_used(project):
    runner.invoke(app, ["init"])
    result = runner.invoke(app, ["--plan", "plans/example.yaml", "validate"])
    assert result.exit_code == 0
    assert "valid" in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["validate"], "no plan file"),
        (["validate", "missing.yaml"], "file not found"),
        (["validate", "."], "directory"),
    ],
)
def test_validate_reports_unusable_paths(project, args, fragment):
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert fragment in result.output and "Traceback" not in result.output


def test_validate_refuses_several_plans(project):
    (project / "plans").mkdir()
    for name in ("a.yaml", "b.yaml"):
        (project / "plans" / name).write_text("version: 1\n")
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    assert "plans/a.yaml, plans/b.yaml" in result.output


def test_validate_json(project):
    (project / "p.yaml").write_text("version: 3\n")
    result = runner.invoke(app, ["validate", "p.yaml", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False
    assert report["problems"][0]["line"] == 1
    assert report["problems"][0]["path"] == "version"


def test_schema_prints_json_schema(project):
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "subaccounts" in schema["properties"]
