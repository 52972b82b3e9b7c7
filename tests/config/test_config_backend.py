"""The plan's `backend:` section: local by default, postgres with the DSN's variable named,
every mistake reported at its line without echoing what could be a DSN."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import BackendSettings, PlanError, load_plan, read_backend_settings

BASE = "version: 1\nexchange: {kind: sandbox}\n"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # positions are shown relative to the working directory


def plan(tmp_path: Path, backend: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(BASE + backend, encoding="utf-8")
    return path


def problems(tmp_path: Path, backend: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        load_plan(plan(tmp_path, backend))
    return [p.format() for p in caught.value.problems]


def test_without_a_backend_section_the_store_is_the_local_files(tmp_path):
    assert load_plan(plan(tmp_path, "")).backend == BackendSettings(kind="local")


def test_postgres_reads_the_dsn_from_the_default_variable_and_schema(tmp_path):
    loaded = load_plan(plan(tmp_path, "backend: {kind: postgres}\n"))
    assert loaded.backend == BackendSettings("postgres", "ORCHESTRATOR_PG_DSN", "orchestrator")


def test_postgres_with_its_own_variable_and_schema(tmp_path):
    loaded = load_plan(
        plan(tmp_path, "backend:\n  kind: postgres\n  dsn_env: TEAM_DSN\n  schema: keys_prod\n")
    )
    assert loaded.backend == BackendSettings("postgres", "TEAM_DSN", "keys_prod")


def test_an_unknown_kind_is_reported_at_its_line(tmp_path):
    (found,) = problems(tmp_path, "backend:\n  kind: mysql\n")
    assert found.startswith("plan.yaml:4:")
    assert "local" in found and "postgres" in found


def test_a_dsn_in_the_file_is_refused_and_sent_to_the_environment(tmp_path):
    (found,) = problems(
        tmp_path, "backend:\n  kind: postgres\n  dsn: postgresql://u:hunter2@db/x\n"
    )
    assert found.startswith("plan.yaml:5:")
    assert "environment" in found and "ORCHESTRATOR_PG_DSN" in found
    assert "hunter2" not in found


def test_a_dsn_given_as_the_variable_name_is_not_echoed(tmp_path):
    (found,) = problems(
        tmp_path, "backend: {kind: postgres, dsn_env: 'postgresql://u:hunter2@db/x'}\n"
    )
    assert found.startswith("plan.yaml:3:")
    assert "hunter2" not in found and "environment variable" in found


def test_postgres_settings_on_the_local_backend_are_refused(tmp_path):
    (found,) = problems(tmp_path, "backend: {kind: local, dsn_env: TEAM_DSN}\n")
    assert "postgres backend" in found


def test_a_schema_name_that_is_not_simple_is_refused(tmp_path):
    (found,) = problems(tmp_path, 'backend: {kind: postgres, schema: "a; drop"}\n')
    assert "schema" in found and found.startswith("plan.yaml:3:")


def test_the_backend_section_is_read_even_when_the_rest_of_the_plan_is_broken(tmp_path):
    path = plan(tmp_path, "backend: {kind: postgres, schema: team}\nsubaccounts: 7\n")
    with pytest.raises(PlanError):
        load_plan(path)
    assert read_backend_settings(path) == BackendSettings("postgres", "ORCHESTRATOR_PG_DSN", "team")
