"""`orchestrator state migrate`: a project's store moves between the local files and
PostgreSQL with nothing lost, the audit chain continues across the move (which is itself an
audit line), and a plan still naming the old backend is refused rather than started afresh."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from orchestrator.store.files import LocalFileBackend
from orchestrator.store.moving import MoveRefused, export, import_records, move_store
from orchestrator.store.postgres import PgStore, PostgresBackend
from tests import pg_kit
from tests.safety.safety_kit import bots_keys_work, ok, run

pytestmark = pytest.mark.postgres

PLAN = Path("plans") / "example.yaml"


@pytest.fixture
def env(pg_dsn) -> dict[str, str]:
    return {"ORCHESTRATOR_PG_DSN": pg_dsn}


def name_backend(project: Path, schema: str | None) -> None:
    plan = project / PLAN
    text = plan.read_text()
    if schema is None:
        plan.write_text("".join(line for line in text.splitlines(True) if "backend:" not in line))
    else:
        plan.write_text(pg_kit.with_backend(text, schema))


def postgres(pg_dsn: str, schema: str, project: Path) -> PostgresBackend:
    return PostgresBackend(PgStore(pg_dsn, schema).open(), project)


def test_a_round_trip_keeps_state_history_and_the_audit_chain(project, pg_schema, env, pg_dsn):
    ok(project, "apply", "--auto-approve")
    ok(project, "rotate", "--auto-approve", "--label", "Koinly-Tax")
    before = LocalFileBackend(project).load_state("example")
    audit_before = (project / "state" / "audit.jsonl").read_bytes().splitlines()

    moved = ok(project, "state", "migrate", "--to", "postgres", "--schema", pg_schema, **env)
    assert "Now set `backend:" in moved and "1 earlier version" in moved
    refused = run(project, "plan", **env)
    assert refused.returncode == 1 and "moved to PostgreSQL" in refused.stderr
    assert "Traceback" not in refused.stderr

    name_backend(project, pg_schema)
    assert "intact" in ok(project, "log", "verify", **env)
    assert "No changes" in ok(project, "plan", **env)
    store = postgres(pg_dsn, pg_schema, project)
    assert store.load_state("example") == before
    lines = export(store).audit
    assert lines[: len(audit_before)] == audit_before
    assert json.loads(lines[-1])["action"] == "state_migrate"
    ok(project, "rotate", "--auto-approve", "--label", "QuantBot-BTC", **env)
    assert bots_keys_work(project)
    on_postgres = store.load_state("example")
    versions = len(store.history("example"))
    store.store.close()

    ok(project, "state", "migrate", "--to", "local", **env)
    name_backend(project, None)
    verified = ok(project, "log", "verify")
    assert "intact" in verified
    back = LocalFileBackend(project)
    assert back.load_state("example") == on_postgres
    events = [json.loads(line) for line in (project / "state" / "audit.jsonl").open()]
    assert [e["action"] for e in events].count("state_migrate") == 2
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    kept = sorted((project / "state" / "example.state.history").glob("*.json"))
    assert len(kept) + 1 == versions  # the older versions, and the backup
    assert "No changes" in ok(project, "plan")
    name_backend(project, pg_schema)
    refused = run(project, "plan", **env)
    assert refused.returncode == 1 and "was moved to the local files" in refused.stderr


def test_an_open_journal_intent_moves_and_is_reconciled_there(project, pg_schema, env):
    killed = run(project, "apply", "--auto-approve", ORCHESTRATOR_CRASH_AT="after_create")
    assert killed.returncode == -signal.SIGKILL
    ok(project, "state", "migrate", "--to", "postgres", "--schema", pg_schema, **env)
    name_backend(project, pg_schema)
    done = ok(project, "apply", "--auto-approve", **env)
    assert "recovered:" in done
    assert bots_keys_work(project)
    assert "intact" in ok(project, "log", "verify", **env)


def test_a_plan_naming_postgres_before_the_move_is_refused_not_started_afresh(
    project, pg_schema, env
):
    ok(project, "apply", "--auto-approve")
    name_backend(project, pg_schema)
    refused = run(project, "apply", "--auto-approve", **env)
    assert refused.returncode == 1
    assert "state migrate --to postgres" in refused.stderr
    moved = ok(project, "state", "migrate", "--to", "postgres", **env)  # the plan's schema
    assert "Now set" not in moved
    assert "No changes" in ok(project, "plan", **env)


def test_a_move_into_a_store_that_holds_another_project_is_refused(
    project, pg_schema, env, pg_dsn, tmp_path
):
    ok(project, "apply", "--auto-approve")
    other = postgres(pg_dsn, pg_schema, tmp_path)
    other.audit("apply").append("create_key", detail={"elsewhere": True})
    other.store.close()
    refused = run(project, "state", "migrate", "--to", "postgres", "--schema", pg_schema, **env)
    assert refused.returncode == 1 and "already holds a store" in refused.stderr
    assert (project / "state" / "example.state.json").exists()  # nothing moved


def test_a_move_interrupted_after_the_copy_is_finished_by_running_it_again(
    project, pg_schema, pg_dsn
):
    ok(project, "apply", "--auto-approve")
    local = LocalFileBackend(project)
    target = postgres(pg_dsn, pg_schema, project)
    import_records(target, export(local))
    target.audit("state migrate").append("state_migrate")  # then the process died
    moved = move_store(local, target)
    assert moved.resumed and moved.projects == ("example",)
    assert (project / "state" / "moved.json").exists()
    assert target.verify_audit().ok
    target.store.close()


def test_a_broken_audit_chain_is_not_moved(project, pg_schema, pg_dsn):
    ok(project, "apply", "--auto-approve")
    log = project / "state" / "audit.jsonl"
    log.write_bytes(log.read_bytes().replace(b"create", b"delete", 1))
    target = postgres(pg_dsn, pg_schema, project)
    with pytest.raises(MoveRefused, match="does not verify"):
        move_store(LocalFileBackend(project), target)
    assert not export(target).holds_anything()
    target.store.close()
