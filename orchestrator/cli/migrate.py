"""`state migrate`: which two stores the move is between, and what to tell the user after."""

from __future__ import annotations

from pathlib import Path


def migrate(plan_file: Path | None, to: str, dsn_env: str | None, schema: str | None) -> list[str]:
    """Move the project's store to `to`. The PostgreSQL side is the one the options name,
    else the plan's `backend:` (when it names postgres), else the defaults."""
    from dataclasses import replace

    from orchestrator.config import BackendSettings, find_plan, read_backend_settings
    from orchestrator.engine.workspace import open_backend
    from orchestrator.store.moving import describe, movable, move_store

    root = Path.cwd()
    plan_path = find_plan(plan_file, root)
    named = read_backend_settings(plan_path)
    postgres = named if named.kind == "postgres" else BackendSettings(kind="postgres")
    postgres = replace(
        postgres, dsn_env=dsn_env or postgres.dsn_env, schema=schema or postgres.schema
    )
    local = BackendSettings(kind="local")
    source, target = (local, postgres) if to == "postgres" else (postgres, local)
    source_backend = movable(open_backend(source, root))
    target_backend = movable(open_backend(target, root))
    moved = move_store(source_backend, target_backend)
    done = "Finished the interrupted move of" if moved.resumed else "Moved"
    lines = [
        f"{done} {', '.join(moved.projects)} from {describe(source_backend)} to"
        f" {describe(target_backend)}: states with {moved.versions} earlier version(s),"
        f" {moved.journal_entries} journal entries, {moved.audit_lines} audit lines; the move"
        " is the audit log's next line."
    ]
    if named != target:
        wanted = (
            f"{{kind: postgres, dsn_env: {postgres.dsn_env}, schema: {postgres.schema}}}"
            if to == "postgres"
            else "{kind: local}"
        )
        lines.append(f"Now set `backend: {wanted}` in {plan_path.name}: until then it is refused.")
    return lines
