"""`import`, `state` and `log`: what state records about the keys, and the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.context import configure_logging, global_options, open_workspace
from orchestrator.cli.errors import Failure, UserError, usage_error, user_errors

state_app = typer.Typer(
    help="Inspect state, or rebuild it from live apiNames.", no_args_is_help=True
)
log_app = typer.Typer(help="The audit log.", no_args_is_help=True)

if TYPE_CHECKING:
    from orchestrator.store.backend import StateBackend
    from orchestrator.wiring import Wiring


def import_(
    ctx: typer.Context,
    subaccount: str | None = typer.Option(None, "--subaccount", help="Plan sub-account name."),
    apikey: str | None = typer.Option(None, "--apikey", help="The live API key to adopt."),
    label: str | None = typer.Option(None, "--label", help="The plan label to bind it to."),
    all_keys: bool = typer.Option(
        False, "--all", help="Adopt every key whose apiName names a label."
    ),
) -> None:
    """Adopt existing live keys into state."""
    import asyncio

    options = global_options(ctx)
    configure_logging(options)
    if all_keys == bool(subaccount or apikey or label) or (
        not all_keys and not (subaccount and apikey and label)
    ):
        usage_error("use either --all, or --subaccount, --apikey and --label together.")
    with user_errors():
        messages = asyncio.run(
            _adopt(options.plan, options.wiring, "import", subaccount, apikey, label)
        )
    for message in messages:
        typer.echo(message)


@state_app.command("rebuild")
def state_rebuild(ctx: typer.Context) -> None:
    """Rebuild state from the apiNames of live keys (when the state file is lost)."""
    import asyncio

    options = global_options(ctx)
    configure_logging(options)
    with user_errors():
        messages = asyncio.run(
            _adopt(options.plan, options.wiring, "state rebuild", None, None, None)
        )
    for message in messages or ["State already matches the live keys."]:
        typer.echo(message)


async def _adopt(
    plan_file: Path | None,
    wiring: Wiring | None,
    command: str,
    subaccount: str | None,
    apikey: str | None,
    label: str | None,
) -> list[str]:
    from orchestrator.engine import operations

    ws = open_workspace(plan_file, wiring)
    return await operations.adopt(ws, command, subaccount=subaccount, api_key=apikey, label=label)


@state_app.command("restore")
def state_restore(ctx: typer.Context) -> None:
    """Put the backup of the state file back (the damaged file is kept beside it), then bring
    it in line with what the live account and the sinks prove."""
    import asyncio

    from orchestrator.config import find_plan, load_plan

    options = global_options(ctx)
    configure_logging(options)
    with user_errors():
        project = load_plan(find_plan(options.plan, Path.cwd())).name
        backend = _plan_backend(options.plan)
        with backend.lock(project, "state restore"):
            state = backend.restore_backup(project)
        typer.echo(f"Restored {backend.describe(project)} from its backup (serial {state.serial}).")
        messages = asyncio.run(_reconcile_restored(options.plan, options.wiring))
    for message in messages:
        typer.echo(message)


async def _reconcile_restored(plan_file: Path | None, wiring: Wiring | None) -> list[str]:
    from orchestrator.engine import operations

    ws = open_workspace(plan_file, wiring)
    return await operations.reconcile_state(ws, "state restore")


@state_app.command("list")
def state_list(ctx: typer.Context, json_output: bool = typer.Option(False, "--json")) -> None:
    """The keys state records, one per line."""
    import json

    from orchestrator.store.audit import mask_key

    with user_errors():
        state = _load_state_only(global_options(ctx).plan)
    records = sorted(state.keys.values(), key=lambda r: (r.subaccount, r.label)) if state else []
    if json_output:
        typer.echo(json.dumps([_record_json(r) for r in records], indent=2))
        return
    if not records:
        typer.echo("State records no keys.")
        return
    for r in records:
        retired = f"; {len(r.previous)} previous" if r.previous else ""
        typer.echo(
            f"{r.subaccount + '/' + r.label:<32} g{r.generation:<3} {mask_key(r.api_key)}  "
            f"created {r.created_at:%Y-%m-%d %H:%M}  {r.sink}{retired}"
        )


@state_app.command("show")
def state_show(
    ctx: typer.Context, label: str = typer.Argument(..., help="Label or sub-account/label.")
) -> None:
    """One key's record (it holds no secret)."""
    import json

    with user_errors():
        state = _load_state_only(global_options(ctx).plan)
        matches = [r for a, r in (state.keys.items() if state else []) if label in (a, r.label)]
        if len(matches) != 1:
            known = ", ".join(sorted(state.keys)) if state else "none"
            what = "several keys" if matches else "no key"
            raise UserError(f"{what} labelled {label!r} in state (known: {known})")
    typer.echo(json.dumps(_record_json(matches[0]), indent=2))


def _record_json(record) -> dict:
    from orchestrator.store.audit import mask_key

    data = record.model_dump(mode="json")
    data["api_key"] = mask_key(record.api_key)
    for old in data["previous"]:
        old["api_key"] = mask_key(old["api_key"])
    return data


def _load_state_only(plan_file: Path | None):
    """The plan's state without loading the plan itself (so a broken plan can be inspected)."""
    from orchestrator.config import find_plan

    path = find_plan(plan_file, Path.cwd())
    return _plan_backend(path).load_state(path.stem)


def _plan_backend(plan_file: Path | None) -> StateBackend:
    """The store the plan names in its `backend:` section (the rest of it may be broken)."""
    from orchestrator.config import find_plan, read_backend_settings
    from orchestrator.engine.workspace import open_backend

    settings = read_backend_settings(find_plan(plan_file, Path.cwd()))
    return open_backend(settings, Path.cwd())


def _audit_backend(plan_file: Path | None) -> StateBackend:
    """The store holding the audit log: the plan's, or the local files when no single plan
    is here to name one."""
    from orchestrator.config import PlanError
    from orchestrator.store.files import LocalFileBackend

    try:
        return _plan_backend(plan_file)
    except PlanError:
        if plan_file is not None:
            raise
        return LocalFileBackend(Path.cwd())


@log_app.command("verify")
def log_verify(ctx: typer.Context) -> None:
    """Check the audit log's hash chain and the heads the states anchored; name the first
    bad line."""
    with user_errors():
        backend = _audit_backend(global_options(ctx).plan)
        result = backend.verify_audit()
    if result.ok:
        typer.echo(result.report(backend.audit_name()))
        return
    Failure((result.report(backend.audit_name()),)).exit()


@state_app.command("migrate")
def state_migrate(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", help="Where the store goes: postgres or local."),
    dsn_env: str | None = typer.Option(
        None,
        "--dsn-env",
        help="Variable holding the DSN (default: the plan's, else ORCHESTRATOR_PG_DSN).",
    ),
    schema: str | None = typer.Option(
        None, "--schema", help="PostgreSQL schema (default: the plan's, else orchestrator)."
    ),
) -> None:
    """Move state (with its history), journal and audit log to the other backend."""
    from orchestrator.cli.migrate import migrate

    if to not in ("postgres", "local"):
        usage_error(f"--to takes postgres or local, not {to!r}.")
    options = global_options(ctx)
    configure_logging(options)
    with user_errors():
        lines = migrate(options.plan, to, dsn_env, schema)
    for line in lines:
        typer.echo(line)
