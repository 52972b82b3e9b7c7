"""`audit` and `lockdown`: report risky keys, and delete every key in scope in an incident."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.context import (
    BREAK_STALE_LOCK_HELP,
    configure_logging,
    global_options,
    open_workspace,
)
from orchestrator.cli.errors import usage_error, user_errors
from orchestrator.cli.ui import QuietUi, TerminalUi, cancelled

if TYPE_CHECKING:
    from orchestrator.engine.changeset import Severity
    from orchestrator.wiring import Wiring

SEVERITY_COLORS = {
    "critical": "red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": None,
}


def audit(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
    fail_on: str | None = typer.Option(
        None, "--fail-on", help="Exit 1 if any finding is this severe: low, medium, high, critical."
    ),
) -> None:
    """Security hygiene report: unknown, widened, unwhitelisted, overdue and orphaned keys."""
    import asyncio

    options = global_options(ctx)
    configure_logging(options)
    threshold = _severity(fail_on) if fail_on is not None else None
    with user_errors():
        found, calls = asyncio.run(_audit(options.plan, options.wiring))
    _show_findings(found, calls, json_output)
    if threshold and any(f.severity.rank >= threshold.rank for f in found):
        raise typer.Exit(1)


def _severity(name: str) -> Severity:
    from orchestrator.engine.changeset import Severity

    try:
        return Severity(name.lower())
    except ValueError:
        usage_error(f"--fail-on {name}: use low, medium, high or critical.")


async def _audit(plan_file: Path | None, wiring: Wiring | None):
    from orchestrator.engine import operations

    return await operations.audit(open_workspace(plan_file, wiring, failure_of="audit"))


def _show_findings(found, calls, json_output: bool) -> None:
    import json
    from collections import Counter

    if json_output:
        counts = Counter(f.severity.value for f in found)
        typer.echo(
            json.dumps(
                {"findings": [f.to_dict() for f in found], "counts": counts, "calls": calls},
                indent=2,
            )
        )
        return
    if not found:
        typer.echo("No findings.")
        return
    for f in found:
        color = SEVERITY_COLORS[f.severity.value]
        head = typer.style(f"{f.severity.value.upper():<8}", fg=color, bold=True)
        typer.echo(f"{head} {f.kind:<15} {f.address}: {f.message}")
        if f.fix:
            typer.echo(f"{'':<8} {'':<15} fix: {f.fix}")
    counts = Counter(f.severity.value for f in found)
    typer.echo("\n" + ", ".join(f"{n} {s}" for s, n in counts.most_common()) + ".")


def lockdown(
    ctx: typer.Context,
    subaccount: list[str] = typer.Option(
        [], "--subaccount", help="Only this sub-account (plan name or email; repeatable)."
    ),
    all_keys: bool = typer.Option(False, "--all", help="Required: every key in scope goes."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    break_stale_lock: bool = typer.Option(False, "--break-stale-lock", help=BREAK_STALE_LOCK_HELP),
    json_output: bool = typer.Option(
        False, "--json", help="Print what was deleted as JSON (needs --yes)."
    ),
) -> None:
    """Delete every key in scope, managed or not, as fast as the rate limits allow."""
    import asyncio

    options = global_options(ctx)
    configure_logging(options)
    if not all_keys:
        usage_error(
            "lockdown deletes every key in scope, managed or not; pass --all to "
            "confirm (and --subaccount NAME to narrow the scope)."
        )
    if json_output and not yes:
        usage_error("lockdown --json cannot ask for 'yes': pass --yes.")
    quiet = QuietUi() if json_output else None
    ui = quiet or TerminalUi()
    with user_errors():
        deleted = asyncio.run(
            _lockdown(options.plan, options.wiring, ui, subaccount, yes, break_stale_lock)
        )
    if deleted is None:
        cancelled("Lockdown", ui, "--yes")
        raise typer.Exit(1)
    failed = [d for d in deleted if d.error]
    if quiet:
        _print_deleted_json(deleted, quiet.notes)
    else:
        typer.echo(
            f"\nLockdown: {len(deleted) - len(failed)} key(s) deleted, {len(failed)} failed."
        )
        typer.echo("To recreate the planned keys with fresh material: orchestrator apply")
    if failed:
        raise typer.Exit(1)


async def _lockdown(
    plan_file: Path | None,
    wiring: Wiring | None,
    ui,
    names: list[str],
    yes: bool,
    break_stale: bool,
):
    from orchestrator.engine import operations

    ws = open_workspace(plan_file, wiring, failure_of="lockdown")
    return await operations.lockdown(ws, ui, names=names, yes=yes, break_stale=break_stale)


def _print_deleted_json(deleted, notes: list[str]) -> None:
    import json

    from orchestrator.store.audit import mask_key

    failed = sum(bool(d.error) for d in deleted)
    keys = [
        {
            "email": d.email,
            "api_name": d.api_name,
            "api_key": mask_key(d.api_key),
            "managed_as": d.managed_as,
            "ok": not d.error,
            "error": d.error,
            "warning": d.warning,
        }
        for d in sorted(deleted, key=lambda d: (d.email, d.api_name))
    ]
    data = {"deleted": keys, "done": len(deleted) - failed, "failed": failed, "notes": notes}
    typer.echo(json.dumps(data, indent=2))
