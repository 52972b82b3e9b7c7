"""The PostgreSQL server the postgres-backend tests use, and schemas of their own in it.

The server is the one at 127.0.0.1:5432 (user postgres, database `test`), or the DSN in
ORCHESTRATOR_TEST_PG_DSN. Every test works in a schema it creates (`orch_t_<random>`) and
that is dropped when the test (or, for schemas module fixtures share, the session) ends.
Without a server these tests are skipped, with one summary line saying how to run them; with
CI=true they fail instead.
"""

from __future__ import annotations

import os
import re
import secrets
from functools import cache
from pathlib import Path

TEST_DSN_ENV = "ORCHESTRATOR_TEST_PG_DSN"
DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/test"
HOW_TO_RUN = (
    "PostgreSQL backend tests skipped: no server at {target}. Run them with a server at"
    " 127.0.0.1:5432 (user postgres, database test, trust auth), or point"
    f" {TEST_DSN_ENV} at one."
)
#: schemas made by this test session, dropped when it ends
_made: set[str] = set()


def test_dsn() -> str:
    return os.environ.get(TEST_DSN_ENV) or DEFAULT_TEST_DSN


@cache
def unreachable_reason() -> str | None:
    """None when the test server answers, else why not."""
    import psycopg

    try:
        with psycopg.connect(test_dsn(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def required() -> bool:
    """CI must run them: an unreachable server is a failure there, not a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def new_schema_name() -> str:
    name = f"orch_t_{secrets.token_hex(6)}"
    _made.add(name)
    return name


def drop_schema(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(test_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    _made.discard(name)


def drop_all() -> None:
    for name in sorted(_made):
        drop_schema(name)


def clone_schema(source: str) -> str:
    """A new schema holding a copy of every table of `source` (a project copied with its store)."""
    import psycopg
    from psycopg import sql

    target = new_schema_name()
    with psycopg.connect(test_dsn(), autocommit=True) as conn, conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(target)))
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (source,)
        ).fetchall()
        for (table,) in tables:
            src = sql.Identifier(source, table)
            dst = sql.Identifier(target, table)
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(dst, src))
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(dst, src))
    return target


def backend_section(schema: str) -> str:
    return f"backend: {{kind: postgres, schema: {schema}}}\n"


def with_backend(plan_text: str, schema: str) -> str:
    """`plan_text` naming the postgres backend in `schema` (replacing one it names)."""
    plan_text = re.sub(r"(?m)^backend:.*\n", "", plan_text)
    return plan_text.replace("version: 1\n", "version: 1\n" + backend_section(schema), 1)


def schema_of(plan: Path) -> str | None:
    found = re.search(r"(?m)^backend: \{kind: postgres, schema: (\w+)\}", plan.read_text())
    return found.group(1) if found else None


def open_backend(project: Path, schema: str):
    """The project's postgres backend, as the tool opens it."""
    from orchestrator.store.postgres import PgStore, PostgresBackend

    return PostgresBackend(PgStore(test_dsn(), schema).open(), project)
