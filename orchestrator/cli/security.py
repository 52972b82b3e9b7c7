"""`audit` and `lockdown`: report risky keys, and delete every key in scope in an incident."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from orchestrator.cli.context import (
    BREAK_STALE_LOCK_HELP,
    GlobalOptions,
    configure_logging,
    global_options,
    open_workspaces,
    several_accounts,
)
from orchestrator.cli.errors import usage_error, user_errors
from orchestrator.cli.ui import (
    AccountUi,
    QuietUi,
    TerminalUi,
    account_heading,
    cancelled,
    print_account_json,
    report_account_failures,
    report_account_runs,
)

if TYPE_CHECKING:
    from orchestrator.engine.changeset import Severity

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
        runs = asyncio.run(_audit(options))
    if len(runs) == 1 and runs[0].account is None:
        found, calls = runs[0].result
        _show_findings(found, calls, json_output)
    else:
        _show_account_findings(runs, json_output)
    found = [f for run in runs if run.ok for f in run.result[0]]
    if not all(run.ok for run in runs):
        raise typer.Exit(1)
    if threshold and any(f.severity.rank >= threshold.rank for f in found):
        raise typer.Exit(1)


def _severity(name: str) -> Severity:
    from orchestrator.engine.changeset import Severity

    try:
        return Severity(name.lower())
    except ValueError:
        usage_error(f"--fail-on {name}: use low, medium, high or critical.")


async def _audit(options: GlobalOptions):
    """A run per account: (findings, calls). A plan without `accounts:` raises its errors."""
    from orchestrator.engine import operations
    from orchestrator.engine.accounts import AccountRun, each_account

    workspaces = open_workspaces(options.plan, options, failure_of="audit")
    if not several_accounts(workspaces):
        return [AccountRun(None, await operations.audit(workspaces[0]))]
    return await each_account(workspaces, operations.audit)


def _show_account_findings(runs, json_output: bool) -> None:
    import json
    from collections import Counter

    if json_output:
        entries = []
        for run in runs:
            if not run.ok:
                entries.append({"account": run.account, "error": str(run.error)})
                continue
            found, calls = run.result
            entries.append(
                {
                    "account": run.account,
                    "findings": [f.to_dict() for f in found],
                    "counts": Counter(f.severity.value for f in found),
                    "calls": calls,
                }
            )
        typer.echo(json.dumps({"accounts": entries}, indent=2))
    else:
        for run in runs:
            account_heading(run.account)
            if run.ok:
                found, calls = run.result
                _show_findings(found, calls, False)
    report_account_failures(runs)


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
    with user_errors():
        ok = asyncio.run(
            _lockdown_accounts(options, subaccount, yes, break_stale_lock, json_output)
        )
    if not ok:
        raise typer.Exit(1)


async def _lockdown_accounts(
    options: GlobalOptions, names: list[str], yes: bool, break_stale: bool, json_output: bool
) -> bool:
    """Lockdown in every account in scope: with --yes all at once (an incident is no time to
    wait for one account after another), else one after the other, each confirmed.
    `--subaccount` names belong to one account each; an account with none of them is left
    alone."""
    from orchestrator.engine.accounts import each_account

    workspaces = open_workspaces(options.plan, options, failure_of="lockdown")
    if not several_accounts(workspaces):
        ui = QuietUi() if json_output else TerminalUi()
        ok, data = await _lockdown(workspaces[0], ui, names, yes, break_stale)
        print_account_json(data)
        return ok
    scoped = _lockdown_scope(workspaces, names)
    chosen = [ws for ws in workspaces if ws.name in scoped]
    if yes:
        runs = await each_account(
            chosen,
            lambda ws: _lockdown(
                ws,
                QuietUi() if json_output else AccountUi(ws.account),
                scoped[ws.name],
                True,
                break_stale,
            ),
        )
        return report_account_runs(runs, json_output)
    ok = True
    for ws in chosen:
        account_heading(ws.account)
        runs = await each_account(
            [ws], lambda w: _lockdown(w, TerminalUi(), scoped[w.name], False, break_stale)
        )
        ok = report_account_runs(runs, False) and ok
    return ok


def _lockdown_scope(workspaces, names: list[str]) -> dict:
    """The `--subaccount` names (plan name or email) of each account to run, by state id:
    those that are its own. A name of no account in the plan goes to every account, whose
    lockdown looks for it among its live sub-accounts."""
    if not names:
        return {ws.name: [] for ws in workspaces}
    scoped: dict = {}
    for ws in workspaces:
        subs = ws.plan.desired.subaccounts
        known = {s.name for s in subs} | {s.email for s in subs if s.email}
        mine = [n for n in names if n in known]
        if mine:
            scoped[ws.name] = mine
    claimed = {n for mine in scoped.values() for n in mine}
    for name in (n for n in names if n not in claimed):
        for ws in workspaces:
            scoped.setdefault(ws.name, []).append(name)
    return scoped


async def _lockdown(
    ws, ui, names: list[str], yes: bool, break_stale: bool
) -> tuple[bool, dict | None]:
    """(whether every key in scope was deleted, the --json document or None)."""
    from orchestrator.engine import operations

    deleted = await operations.lockdown(ws, ui, names=names, yes=yes, break_stale=break_stale)
    lead = getattr(ui, "lead", "")
    if deleted is None:
        cancelled(f"{lead}Lockdown", ui, "--yes")
        return False, None
    failed = [d for d in deleted if d.error]
    if isinstance(ui, QuietUi):
        return not failed, _deleted_json(deleted, ui.notes)
    typer.echo(
        f"\n{lead}Lockdown: {len(deleted) - len(failed)} key(s) deleted, {len(failed)} failed."
    )
    typer.echo(f"{lead}To recreate the planned keys with fresh material: orchestrator apply")
    return not failed, None


def _deleted_json(deleted, notes: list[str]) -> dict:
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
    return {"deleted": keys, "done": len(deleted) - failed, "failed": failed, "notes": notes}
