"""`check`: before the first apply, the master key's own permissions and whitelist, and every
problem that would make apply fail. Reads only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.context import (
    GlobalOptions,
    configure_logging,
    global_options,
    open_workspaces,
)
from orchestrator.cli.errors import user_errors
from orchestrator.cli.ui import account_heading

if TYPE_CHECKING:
    from orchestrator.engine.preflight import CheckReport, Problem
    from orchestrator.exchange.models import ApiRestrictions


def check(
    ctx: typer.Context,
    plan: Path | None = typer.Argument(
        None, help="Plan file (default: --plan, or the only plans/*.yaml)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Before the first apply: validate the plan, show the master key's permissions and
    whitelist, and every problem. Exit 1 if apply would fail or a risk is critical."""
    import asyncio

    options = global_options(ctx)
    configure_logging(options)
    with user_errors():
        checked = asyncio.run(_check(options.plan_file(plan), options))
    if json_output and len(checked) == 1 and checked[0][0] is None:
        _print_json(*checked[0][1:])
    elif json_output:
        entries = [{"account": a, **_check_json(s, r)} for a, s, r in checked]
        typer.echo(json.dumps({"accounts": entries}, indent=2))
    else:
        for account, summary, report in checked:
            account_heading(account)
            _print_text(summary, report)
    if not all(report.ready for _, _, report in checked):
        raise typer.Exit(1)


async def _check(
    plan_file: Path | None, options: GlobalOptions
) -> list[tuple[str | None, str, CheckReport]]:
    """(account, summary, report) for every master account, all read at once."""
    import asyncio

    from orchestrator.config import display_path
    from orchestrator.engine import operations

    workspaces = open_workspaces(plan_file, options)
    for warning in workspaces[0].plan.warnings:
        typer.secho(warning.format(), fg="yellow", err=True)
    reports = await asyncio.gather(*(operations.check(ws) for ws in workspaces))
    checked = []
    for ws, report in zip(workspaces, reports, strict=True):
        subs, keys = len(ws.plan.desired.subaccounts), ws.plan.key_count
        summary = f"{display_path(ws.plan.path)}: valid ({subs} sub-accounts, {keys} keys)"
        checked.append((ws.account, summary, report))
    return checked


def permission_names(master: ApiRestrictions) -> list[str]:
    """The master's permissions as Binance's API Management page names them."""
    from orchestrator.exchange.models import Permission

    names = {
        Permission.SPOT: "Enable Spot & Margin Trading",
        Permission.MARGIN_LOAN: "Enable Margin Loan, Repay & Transfer",
        Permission.FUTURES: "Enable Futures",
        Permission.UNIVERSAL_TRANSFER: "Permits Universal Transfer",
        Permission.OPTIONS: "Enable European Options",
    }
    shown = ["Enable Reading"] if master.enable_reading else []
    shown += [name for permission, name in names.items() if permission in master.permissions]
    return shown + (["Enable Withdrawals"] if master.enable_withdrawals else [])


def _level(problem: Problem) -> str:
    from orchestrator.engine.changeset import Severity

    if problem.finding.severity is Severity.CRITICAL:
        return "critical"
    return "error" if problem.blocks else "warning"


def _print_text(summary: str, report: CheckReport) -> None:
    typer.echo(summary)
    typer.echo(f"Master key {report.master_key}:")
    if report.master is None:
        typer.echo("  permissions:  unknown (could not be read)")
    else:
        whitelist = "on (trusted IPs only)" if report.master.ip_restrict else "none (any IP)"
        typer.echo(f"  permissions:  {', '.join(permission_names(report.master))}")
        typer.echo(f"  withdrawals:  {'ON' if report.master.enable_withdrawals else 'off'}")
        typer.echo(f"  IP whitelist: {whitelist}")
    if report.problems:
        typer.echo("")
    for problem in report.problems:
        level, f = _level(problem), problem.finding
        head = typer.style(f"{level.upper():<8}", fg="yellow" if level == "warning" else "red")
        typer.echo(f"{head} {f.kind:<22} {f.address}: {f.message}")
        typer.echo(f"{'':<8} {'':<22} fix: {f.fix}")
    typer.echo("")
    typer.echo(_verdict(report))


def _verdict(report: CheckReport) -> str:
    blocking = sum(p.blocks for p in report.problems)
    if blocking:
        return (
            f"Not ready: {blocking} problem(s) would make apply fail or are critical; "
            "fix them, then run `orchestrator check` again."
        )
    warnings = len(report.problems)
    return f"Ready to apply, with {warnings} warning(s)." if warnings else "Ready to apply."


def _print_json(summary: str, report: CheckReport) -> None:
    typer.echo(json.dumps(_check_json(summary, report), indent=2))


def _check_json(summary: str, report: CheckReport) -> dict:
    master = None
    if report.master is not None:
        master = {
            "api_key": report.master_key,
            "permissions": permission_names(report.master),
            "withdrawals": report.master.enable_withdrawals,
            "ip_restrict": report.master.ip_restrict,
        }
    else:
        master = {"api_key": report.master_key, "permissions": None}
    data = {
        "plan": summary,
        "ready": report.ready,
        "master": master,
        "problems": [p.to_dict() for p in report.problems],
        "calls": dict(report.calls),
    }
    return data
