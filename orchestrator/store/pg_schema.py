"""The PostgreSQL backend's tables, created and migrated by the tool itself.

`MIGRATIONS` is append-only: each entry is applied once, in order, and recorded in
`schema_migrations`. Every run that opens the backend calls `migrate`, which takes a
transaction-level advisory lock first, so two first runs at once do not both create the
tables; a schema migrated by a newer orchestrator (a version this one does not know) is
refused rather than misread.

Lines (state changes, journal entries, audit events) are kept as the same canonical JSON
text the local backend writes, so both backends read them with the same code and a move
between them copies them unchanged.
"""

from __future__ import annotations

import hashlib

import psycopg
import psycopg.errors
from psycopg import sql

from orchestrator.store.errors import StoreError

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "state, history, state log, journal, audit log, lock holders, move marker",
        """
        CREATE TABLE {schema}.states (
            project text PRIMARY KEY,
            lineage text NOT NULL,
            serial bigint NOT NULL,
            body text NOT NULL,
            saved_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {schema}.state_history (
            project text NOT NULL,
            version bigint NOT NULL,
            lineage text NOT NULL,
            serial bigint NOT NULL,
            body text NOT NULL,
            saved_at timestamptz NOT NULL,
            replaced_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (project, version)
        );
        CREATE TABLE {schema}.state_log (
            project text NOT NULL,
            position bigint NOT NULL,
            line text NOT NULL,
            PRIMARY KEY (project, position)
        );
        CREATE TABLE {schema}.journal (
            project text NOT NULL,
            position bigint NOT NULL,
            line text NOT NULL,
            PRIMARY KEY (project, position)
        );
        CREATE TABLE {schema}.journal_kept (
            project text NOT NULL,
            cleared_at timestamptz NOT NULL,
            position bigint NOT NULL,
            line text NOT NULL,
            PRIMARY KEY (project, cleared_at, position)
        );
        CREATE TABLE {schema}.audit (
            seq bigint PRIMARY KEY,
            line_offset bigint NOT NULL,
            line text NOT NULL
        );
        CREATE TABLE {schema}.lock_holders (
            project text PRIMARY KEY,
            holder text NOT NULL,
            host text NOT NULL,
            pid integer NOT NULL,
            command text NOT NULL,
            started_at text NOT NULL,
            token text NOT NULL,
            backend_pid integer NOT NULL
        );
        CREATE TABLE {schema}.moved (
            only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
            destination text NOT NULL,
            moved_at timestamptz NOT NULL DEFAULT now(),
            moved_by text NOT NULL
        );
        """,
    ),
)

LATEST = MIGRATIONS[-1][0]


def advisory_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for `parts` (a schema, a project...)."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def migrate(conn: psycopg.Connection, schema: str) -> list[int]:
    """Create the schema and apply the migrations it lacks; returns the versions applied.
    A schema that is up to date costs one query and needs no right to create anything."""
    if _version(conn, schema) == LATEST:
        return []
    ident = sql.Identifier(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key(schema, "migrate"),))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
        rows = conn.execute(
            sql.SQL("SELECT version FROM {}.schema_migrations").format(ident)
        ).fetchall()
        applied = {row[0] for row in rows}
        unknown = sorted(v for v in applied if v > LATEST)
        if unknown:
            raise StoreError(
                f"PostgreSQL schema {schema!r} was migrated by a newer orchestrator (schema"
                f" version {unknown[-1]}, this one knows up to {LATEST}). Upgrade orchestrator."
            )
        done = []
        for version, name, statements in MIGRATIONS:
            if version in applied:
                continue
            conn.execute(sql.SQL(statements).format(schema=ident))  # type: ignore[arg-type]
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_migrations (version, name) VALUES (%s, %s)").format(
                    ident
                ),
                (version, name),
            )
            done.append(version)
    return done


def _version(conn: psycopg.Connection, schema: str) -> int | None:
    """The schema's latest migration, or None when it has no migrations table yet."""
    query = sql.SQL("SELECT max(version) FROM {}.schema_migrations").format(sql.Identifier(schema))
    try:
        with conn.transaction():
            row = conn.execute(query).fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return None
    return row[0] if row else None
