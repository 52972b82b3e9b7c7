"""The PostgreSQL backend against the real server: migrations, state with its history and
log, the journal, the audit chain with its anchors, and what a missing or unreachable
server says. Each test works in a schema of its own (the `pg_schema` fixture)."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql

from orchestrator.store.errors import (
    CorruptStateError,
    LineageMismatch,
    LockHeld,
    StaleStateError,
    StoreError,
)
from orchestrator.store.files import LocalFileBackend, new_state, next_serial
from orchestrator.store.journal import intent_record, outcome_record
from orchestrator.store.pg_schema import LATEST, migrate
from orchestrator.store.postgres import BackendUnavailable, PgStore, PostgresBackend, open_store
from orchestrator.store.state import SubaccountRecord
from orchestrator.store.statelog import StateChange, change_line

pytestmark = pytest.mark.postgres


@pytest.fixture
def backend(pg_dsn, pg_schema, tmp_path) -> PostgresBackend:
    store = PgStore(pg_dsn, pg_schema).open()
    yield PostgresBackend(store, tmp_path)
    store.close()


def raw(pg_dsn: str, query: str, *params):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else None


def with_sub(state, name: str):
    subs = {**state.subaccounts, name: SubaccountRecord(name=name, email=f"{name}@example.com")}
    return state.model_copy(update={"subaccounts": subs})


# ---------------------------------------------------------------- migrations


def test_migrations_are_recorded_once_and_rerunning_them_changes_nothing(pg_dsn, pg_schema):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert migrate(conn, pg_schema) == [LATEST]
        assert migrate(conn, pg_schema) == []
    rows = raw(pg_dsn, f"SELECT version FROM {pg_schema}.schema_migrations")
    assert rows == [(LATEST,)]


def test_concurrent_first_runs_migrate_the_schema_once(pg_dsn, pg_schema):
    results: list = []

    def first_run() -> None:
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                results.append(migrate(conn, pg_schema))
        except Exception as exc:  # noqa: BLE001 - the assertion below reports it
            results.append(exc)

    threads = [threading.Thread(target=first_run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, results)) == sorted(["[1]"] + ["[]"] * 5), results


def test_a_schema_migrated_by_a_newer_orchestrator_is_refused(pg_dsn, pg_schema):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn, pg_schema)
    raw(pg_dsn, f"INSERT INTO {pg_schema}.schema_migrations (version, name) VALUES (99, 'x')")
    with pytest.raises(StoreError, match="newer orchestrator"):
        PgStore(pg_dsn, pg_schema).open()


# ---------------------------------------------------------------- state


def test_saves_keep_serial_lineage_and_every_earlier_version(backend):
    first = backend.save_state(next_serial(new_state("demo")))
    second = backend.save_state(next_serial(with_sub(first, "a")))
    third = backend.save_state(next_serial(with_sub(second, "b")))
    loaded = backend.load_state("demo", expected_lineage=first.lineage)
    assert loaded.serial == 3 and set(loaded.subaccounts) == {"a", "b"}
    assert [s.serial for s in backend.history("demo")] == [1, 2]
    assert third.lineage == first.lineage


def test_a_save_that_lost_a_race_is_refused(backend):
    saved = backend.save_state(next_serial(new_state("demo")))
    backend.save_state(next_serial(saved))
    with pytest.raises(StaleStateError, match="serial 2"):
        backend.save_state(next_serial(saved))


def test_another_lineage_is_refused(backend):
    saved = backend.save_state(next_serial(new_state("demo")))
    with pytest.raises(LineageMismatch):
        backend.save_state(next_serial(next_serial(new_state("demo"))))
    with pytest.raises(LineageMismatch):
        backend.load_state("demo", expected_lineage="another")
    assert backend.load_state("demo").lineage == saved.lineage


def test_the_state_log_is_replayed_on_load_and_folded_in_by_compact(backend):
    saved = backend.save_state(next_serial(new_state("demo")))
    writer = backend.state_writer("demo")
    one = with_sub(saved, "a").model_copy(update={"serial": 2})
    two = with_sub(one, "b").model_copy(update={"serial": 3})
    writer.write_group([StateChange(one, change_line(saved, one))])
    writer.write_group([StateChange(two, change_line(one, two))])
    assert backend.load_state("demo").serial == 3
    assert backend.history("demo") == []  # only logged so far
    compacted = backend.compact("demo")
    assert compacted.serial == 3 and set(compacted.subaccounts) == {"a", "b"}
    assert backend.state_writer("demo").log.count() == 0
    assert [s.serial for s in backend.history("demo")] == [1]


def test_a_hand_edited_state_is_corrupt_and_restore_puts_the_previous_version_back(
    backend, pg_dsn, pg_schema
):
    saved = backend.save_state(next_serial(new_state("demo")))
    backend.save_state(next_serial(with_sub(saved, "a")))
    raw(pg_dsn, f'UPDATE {pg_schema}.states SET body = \'{{"serial": "7"}}\'')
    with pytest.raises(CorruptStateError, match="state restore"):
        backend.load_state("demo")
    restored = backend.restore_backup("demo")
    assert restored.serial == 1
    assert backend.load_state("demo").serial == 1
    assert len(backend.history("demo")) == 1  # the damaged version is kept (unparsable)
    assert raw(pg_dsn, f"SELECT count(*) FROM {pg_schema}.state_history") == [(2,)]


def test_a_state_still_in_local_files_is_not_started_afresh(backend, tmp_path):
    LocalFileBackend(tmp_path).save_state(next_serial(new_state("demo")))
    with pytest.raises(StoreError, match="state migrate --to postgres"):
        backend.load_state("demo")


# ---------------------------------------------------------------- journal


def test_the_journal_lists_open_intents_and_clears_in_one_step(backend):
    journal = backend.journal("demo")
    journal.write_group([intent_record("a", {"op": "create"}), intent_record("b", {"op": "x"})])
    journal.write_group([outcome_record("a", {"api_key": "k"})])
    assert [e.op_id for e in journal.pending()] == ["b"]
    assert backend.journal("other").entries() == []
    journal.clear()
    assert journal.entries() == []


def test_damaged_journal_entries_are_reported_and_kept_aside(backend, pg_dsn, pg_schema):
    journal = backend.journal("demo")
    journal.intent("a", {"op": "create"})
    raw(pg_dsn, f"INSERT INTO {pg_schema}.journal VALUES ('demo', 2, 'not json')")
    assert "positions 2" in journal.damage_report()
    assert [e.op_id for e in journal.pending()] == ["a"]
    journal.clear()
    assert raw(pg_dsn, f"SELECT count(*) FROM {pg_schema}.journal_kept") == [(2,)]


# ---------------------------------------------------------------- audit log


def test_audit_lines_chain_across_runs_and_verify(backend):
    backend.audit("apply").append("create_key", subaccount="a", detail={"n": 1})
    other = backend.audit("rotate")
    other.write_group([other.event("rotate_key"), other.event("delete_key")])
    backend.save_state(next_serial(new_state("demo")))
    result = backend.verify_audit()
    assert result.ok and result.lines == 3 and result.anchored_seq == 3


def test_an_edited_audit_line_is_named(backend, pg_dsn, pg_schema):
    for n in range(3):
        backend.audit("apply").append("create_key", detail={"n": n})
    raw(
        pg_dsn,
        f"UPDATE {pg_schema}.audit SET line = replace(line, 'create', 'delete') WHERE seq = 2",
    )
    result = backend.verify_audit()
    assert not result.ok and result.first_bad_line == 2 and "modified" in result.reason


def test_lines_cut_off_the_end_are_caught_by_the_state_anchor(backend, pg_dsn, pg_schema):
    for n in range(3):
        backend.audit("apply").append("create_key", detail={"n": n})
    backend.save_state(next_serial(new_state("demo")))
    raw(pg_dsn, f"DELETE FROM {pg_schema}.audit WHERE seq = 3")
    result = backend.verify_audit()
    assert not result.ok and "cut off the end" in result.reason


def test_audit_heads_name_the_offsets_the_lines_would_have_in_a_file(backend, tmp_path):
    """So that a state's anchor holds on either backend after a move."""
    from orchestrator.store.audit import holds

    for n in range(3):
        backend.audit("apply").append("create_key", detail={"n": "é" * n})
    head = backend.save_state(next_serial(new_state("demo"))).audit_head
    rows = raw(backend.store.dsn, f"SELECT line FROM {backend.store.schema}.audit ORDER BY seq")
    log = tmp_path / "audit.jsonl"
    log.write_bytes(b"".join(line.encode() + b"\n" for (line,) in rows))
    assert head.seq == 3 and holds(log, head)


# ---------------------------------------------------------------- reaching the server


def test_a_missing_dsn_variable_says_which_one_and_how_to_set_it():
    with pytest.raises(BackendUnavailable) as caught:
        open_store("TEAM_PG_DSN", environ={})
    assert "TEAM_PG_DSN is not set" in str(caught.value)
    assert "never goes in the plan" in str(caught.value)


def test_an_unreachable_server_is_named_without_its_password():
    dsn = "postgresql://keys:hunter2canary@127.0.0.1:1/prod"
    with pytest.raises(BackendUnavailable) as caught:
        open_store("DSN", environ={"DSN": dsn})
    message = str(caught.value)
    assert "postgresql://keys@127.0.0.1:1/prod" in message and "$DSN" in message
    assert "hunter2canary" not in message


def test_the_schema_name_is_quoted_never_spliced(pg_dsn):
    odd = 'orch_t_odd"; DROP TABLE x; --'
    try:
        PgStore(pg_dsn, odd).open().close()
        found = raw(pg_dsn, "SELECT 1 FROM pg_namespace WHERE nspname = %s", odd)
        assert found == [(1,)]
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(odd)))


# ---------------------------------------------------------------- lock


def test_a_held_lock_refuses_naming_its_holder(backend, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_HOSTNAME", "runner-a")
    with backend.lock("demo", "apply"):
        monkeypatch.setenv("ORCHESTRATOR_HOSTNAME", "runner-b")
        with pytest.raises(LockHeld) as caught:
            backend.lock("demo", "rotate").acquire()
        assert "@runner-a (pid" in str(caught.value) and "running 'apply'" in str(caught.value)
        assert backend.lock("other", "apply").acquire()  # another project's lock is its own
    assert backend.lock("demo", "plan").holder() is None


def test_a_holder_whose_session_ended_is_reported_and_replaced(backend, pg_dsn):
    taken = backend.lock("demo", "apply")
    taken.acquire()
    taken._conn.close()  # as a kill -9 does: the server ends the session and its lock
    assert backend.lock("demo", "apply").is_stale()
    with backend.lock("demo", "rotate"):
        pass
    events = raw(pg_dsn, f"SELECT line FROM {backend.store.schema}.audit")
    assert len(events) == 1 and '"lock_takeover"' in events[0][0]


def test_break_stale_lock_ends_the_session_of_a_holder_on_another_host(backend, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_HOSTNAME", "runner-a")
    held = backend.lock("demo", "apply")
    held.acquire()
    monkeypatch.setenv("ORCHESTRATOR_HOSTNAME", "runner-b")
    with backend.lock("demo", "apply", force_break_stale=True) as broke:
        assert broke.holder().host == "runner-b"
    with pytest.raises(psycopg.OperationalError):  # its session was ended by the server
        held._conn.execute("SELECT 1")


def test_break_stale_lock_never_breaks_a_holder_on_this_host(backend):
    with backend.lock("demo", "apply"):
        with pytest.raises(LockHeld):
            backend.lock("demo", "apply", force_break_stale=True).acquire()
