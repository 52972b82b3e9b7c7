"""`import`, `state` and `log`: what state records about the keys, and the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.context import (
    GlobalOptions,
    configure_logging,
    global_options,
    open_workspaces,
    several_accounts,
)
from orchestrator.cli.conventions import Group
from orchestrator.cli.errors import Failure, UserError, usage_error, user_errors
from orchestrator.cli.ui import report_account_failures

state_app = typer.Typer(
    help="Inspect state, or rebuild it from live apiNames.", no_args_is_help=True, cls=Group
)
log_app = typer.Typer(help="The audit log.", no_args_is_help=True, cls=Group)

if TYPE_CHECKING:
    from orchestrator.store.backend import StateBackend


def import_(
    ctx: typer.Context,
    subaccount: str | None = typer.Option(None, "--subaccount", help="Plan sub-account name."),
    apikey: str | None = typer.Option(None, "--apikey", help="The live API key to adopt."),
    label: str | None = typer.Option(None, "--label", help="The plan label to bind it to."),
    all_keys: bool = typer.Option(
        False, "--all", help="Adopt every key whose apiName names a label."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print what was adopted as JSON."),
) -> None:
    """Adopt existing live keys into state."""
    import asyncio
    import json

    options = global_options(ctx)
    configure_logging(options)
    if all_keys == bool(subaccount or apikey or label) or (
        not all_keys and not (subaccount and apikey and label)
    ):
        usage_error("use either --all, or --subaccount, --apikey and --label together.")
    with user_errors():
        messages, runs = asyncio.run(_adopt(options, "import", subaccount, apikey, label))
    if json_output:
        typer.echo(json.dumps({"adopted": [_adopted_json(m) for m in messages]}, indent=2))
        if not report_account_failures(runs):
            raise typer.Exit(1)
        return
    for message in messages:
        typer.echo(message)
    if not report_account_failures(runs):
        raise typer.Exit(1)


def _adopted_json(message: str) -> dict[str, str]:
    """`quant/Bot: recorded orc-p.Bot-g1` as {"address": ..., "message": ...}."""
    address, _, what = message.partition(": ")
    return {"address": address, "message": what}


@state_app.command("rebuild")
def state_rebuild(ctx: typer.Context) -> None:
    """Rebuild state from the apiNames of live keys (when the state file is lost)."""
    import asyncio

    options = global_options(ctx)
    configure_logging(options)
    with user_errors():
        messages, runs = asyncio.run(_adopt(options, "state rebuild", None, None, None))
    for message in messages or ["State already matches the live keys."]:
        typer.echo(message)
    if not report_account_failures(runs):
        raise typer.Exit(1)


async def _adopt(
    options: GlobalOptions,
    command: str,
    subaccount: str | None,
    apikey: str | None,
    label: str | None,
) -> tuple[list[str], list]:
    """(messages, the run of each account) of adopting in every account at once (one key: in the account of its sub-account). An
    account's failure is reported after the others finished, and fails the command."""
    from orchestrator.engine import operations
    from orchestrator.engine.accounts import each_account

    workspaces = open_workspaces(options.plan, options)
    if subaccount is not None and several_accounts(workspaces):
        owners = [ws for ws in workspaces if subaccount in _subaccount_names(ws)]
        workspaces = owners or workspaces[:1]  # unknown: that account's import says so
    if not several_accounts(workspaces):
        messages = await operations.adopt(
            workspaces[0], command, subaccount=subaccount, api_key=apikey, label=label
        )
        return messages, []
    runs = await each_account(
        workspaces,
        lambda ws: operations.adopt(
            ws, command, subaccount=subaccount, api_key=apikey, label=label
        ),
    )
    return [f"[{run.account}] {m}" for run in runs for m in run.result or []], runs


def _subaccount_names(ws) -> set[str]:
    return {s.name for s in ws.plan.desired.subaccounts}


@state_app.command("restore")
def state_restore(ctx: typer.Context) -> None:
    """Put the backup of the state file back (the damaged file is kept beside it), then bring
    it in line with what the live account and the sinks prove."""
    import asyncio

    from orchestrator.config import find_plan, load_plan

    options = global_options(ctx)
    configure_logging(options)
    with user_errors():
        plan = load_plan(find_plan(options.plan, Path.cwd()))
        parts = plan.per_account(options.accounts)
        if len(parts) > 1:
            raise UserError(
                "state restore puts back one account's backup; name it with "
                f"`orchestrator --account NAME state restore` (accounts: "
                f"{', '.join(plan.account_names)})"
            )
        project, account = parts[0].name, parts[0].account
        backend = _plan_backend(options.plan, account)
        with backend.lock(project, "state restore"):
            state = backend.restore_backup(project)
        typer.echo(f"Restored {backend.describe(project)} from its backup (serial {state.serial}).")
        messages = asyncio.run(_reconcile_restored(options))
    for message in messages:
        typer.echo(message)


async def _reconcile_restored(options: GlobalOptions) -> list[str]:
    from orchestrator.engine import operations

    (ws,) = open_workspaces(options.plan, options)
    return await operations.reconcile_state(ws, "state restore")


@state_app.command("list")
def state_list(ctx: typer.Context, json_output: bool = typer.Option(False, "--json")) -> None:
    """The keys state records, one per line."""
    import json

    from orchestrator.store.audit import mask_key

    with user_errors():
        states = _load_states_only(global_options(ctx))
    records = [
        (account, r)
        for account, state in states
        for r in sorted(state.keys.values(), key=lambda r: (r.subaccount, r.label))
    ]
    if json_output:
        typer.echo(json.dumps([_record_json(r, account) for account, r in records], indent=2))
        return
    if not records:
        typer.echo("State records no keys.")
        return
    for account, r in records:
        retired = f"; {len(r.previous)} previous" if r.previous else ""
        lead = f"[{account}] " if account else ""
        typer.echo(
            f"{lead}{r.subaccount + '/' + r.label:<32} g{r.generation:<3} "
            f"{mask_key(r.api_key)}  created {r.created_at:%Y-%m-%d %H:%M}  {r.sink}{retired}"
        )


@state_app.command("show")
def state_show(
    ctx: typer.Context, label: str = typer.Argument(..., help="Label or sub-account/label.")
) -> None:
    """One key's record (it holds no secret)."""
    import json

    with user_errors():
        states = _load_states_only(global_options(ctx))
        matches = [
            (account, r)
            for account, state in states
            for a, r in state.keys.items()
            if label in (a, r.label)
        ]
        if len(matches) != 1:
            known = ", ".join(sorted(a for _, state in states for a in state.keys)) or "none"
            what = "several keys" if matches else "no key"
            raise UserError(f"{what} labelled {label!r} in state (known: {known})")
    typer.echo(json.dumps(_record_json(matches[0][1], matches[0][0]), indent=2))


def _record_json(record, account: str | None = None) -> dict:
    from orchestrator.store.audit import mask_key

    data = record.model_dump(mode="json")
    if account is not None:
        data = {"account": account, **data}
    data["api_key"] = mask_key(record.api_key)
    for old in data["previous"]:
        old["api_key"] = mask_key(old["api_key"])
    return data


def _load_states_only(options: GlobalOptions) -> list:
    """(account, state) of each account the command covers, states that exist only. The
    plan is read for its `accounts:` when it can be; a broken plan's state is still shown
    (the one of a plan without `accounts:`, named by its project id or file)."""
    from orchestrator.config import PlanError, find_plan, load_plan

    path = find_plan(options.plan, Path.cwd())
    try:
        parts = load_plan(path).per_account(options.accounts)
    except PlanError:
        state = _plan_backend(path).load_state(path.stem)
        return [(None, state)] if state else []
    found = []
    for part in parts:
        state = _plan_backend(path, part.account).load_state(part.name)
        if state is not None:
            found.append((part.account, state))
    return found


def _plan_backend(plan_file: Path | None, account: str | None = None) -> StateBackend:
    """The store the plan names in its `backend:` section (the rest of it may be broken), for
    one master account (None: a plan without `accounts:`)."""
    from orchestrator.config import find_plan, read_backend_settings
    from orchestrator.engine.workspace import open_backend

    settings = read_backend_settings(find_plan(plan_file, Path.cwd()))
    return open_backend(settings, Path.cwd(), account)


def _audit_backends(plan_file: Path | None) -> list[StateBackend]:
    """The stores holding audit logs: one per master account of the plan's backend, or the
    local files' logs when no single plan is here to name one."""
    from orchestrator.config import PlanError, find_plan, load_plan, read_backend_settings
    from orchestrator.engine.workspace import open_backend
    from orchestrator.store.files import LocalFileBackend, accounts_with_audit_logs

    try:
        path = find_plan(plan_file, Path.cwd())
        settings = read_backend_settings(path)
    except PlanError:
        if plan_file is not None:
            raise
        settings = None
    if settings is None or settings.kind == "local":
        accounts = accounts_with_audit_logs(Path.cwd()) or [None]
        return [LocalFileBackend(Path.cwd(), account) for account in accounts]
    names = load_plan(path).account_names or (None,)
    return [open_backend(settings, Path.cwd(), account) for account in names]


@log_app.command("verify")
def log_verify(ctx: typer.Context) -> None:
    """Check the audit log's hash chain and the heads the states anchored; name the first
    bad line."""
    with user_errors():
        backends = _audit_backends(global_options(ctx).plan)
        results = [(backend, backend.verify_audit()) for backend in backends]
    bad = []
    for backend, result in results:
        report = result.report(backend.audit_name())
        if result.ok:
            typer.echo(report)
        else:
            bad.append(report)
    if bad:
        Failure(tuple(bad)).exit()


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
