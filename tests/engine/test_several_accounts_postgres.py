"""Several master accounts on the PostgreSQL backend: each account's state, lock, journal
and audit log live in a schema of its own (`<schema>@<account>`), as each has its own files on
the local backend; keys are checked through each master."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import pg_kit
from tests.engine.test_several_accounts import FUND2_LABELS, MAIN_LABELS, PLAN, master_keys
from tests.safety.safety_kit import ok

pytestmark = pytest.mark.postgres


@pytest.fixture
def desk_on_postgres(project: Path, pg_schema: str) -> Path:
    (project / "plans" / "example.yaml").unlink()
    (project / "plans" / "desk.yaml").write_text(pg_kit.with_backend(PLAN, pg_schema))
    yield project
    for account in ("main", "fund2"):
        pg_kit.drop_schema(f"{pg_schema}@{account}")


def test_each_account_keeps_its_store_in_a_schema_of_its_own(
    desk_on_postgres: Path, pg_schema: str, pg_dsn: str
):
    project = desk_on_postgres
    env = {"ORCHESTRATOR_PG_DSN": pg_dsn}
    ok(project, "apply", "--auto-approve", **env)
    for account, labels in (("main", MAIN_LABELS), ("fund2", FUND2_LABELS)):
        store = pg_kit.open_backend(project, f"{pg_schema}@{account}")
        try:
            state = store.load_state(f"desk@{account}")
            assert state is not None
            assert {address.split("/")[1] for address in state.keys} == labels
            assert store.audit_head() is not None
        finally:
            store.store.close()
    assert not list((project / "state").glob("*.state.json"))  # nothing in local files
    verified = ok(project, "log", "verify", **env)
    assert verified.count("intact") == 2, verified
    listed = master_keys(project)
    assert sum(len(names) for names in listed["main"].values()) == len(MAIN_LABELS)
    assert sum(len(names) for names in listed["fund2"].values()) == len(FUND2_LABELS)
    assert "No changes" in ok(project, "plan", **env)
