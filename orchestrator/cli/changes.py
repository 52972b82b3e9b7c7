"""`plan`, `apply` and `rotate`: show what would change, then carry it out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.context import (
    BREAK_STALE_LOCK_HELP,
    GlobalOptions,
    configure_logging,
    global_options,
    open_workspace,
)
from orchestrator.cli.errors import UserError, usage_error, user_errors
from orchestrator.cli.ui import QuietUi, TerminalUi, cancelled, console, report_results

if TYPE_CHECKING:
    from orchestrator.wiring import Wiring

#: `plan --detailed-exitcode`: nothing to change, but live keys no plan manages can trade.
RISKY_UNMANAGED_EXIT_CODE = 3


def plan(
    ctx: typer.Context,
    plan_file: Path | None = typer.Argument(None, metavar="[PLAN]", help="Plan file."),
    out: Path | None = typer.Option(None, "--out", help="Save the changeset for apply."),
    detailed_exitcode: bool = typer.Option(
        False,
        "--detailed-exitcode",
        help="Exit 0 with no changes, 2 with changes, 3 with no changes but unmanaged keys "
        "that can trade, 1 on error.",
    ),
    target: list[str] = typer.Option([], "--target", help="Only this label (repeatable)."),
    refresh: bool = typer.Option(True, "--refresh/--no-refresh", help="Read live state first."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Refresh live state, diff it against the plan, and show what would change."""
    import asyncio

    options = global_options(ctx)
    configure_logging(options)
    with user_errors():
        changeset, calls, notes = asyncio.run(
            _plan(options.plan_file(plan_file), options.wiring, target, refresh, not json_output)
        )
        if out:
            _write_changeset(out, changeset)
    _show_plan(changeset, calls, notes, json_output, options)
    if out and not json_output:
        typer.echo(f"Saved the changeset to {out}; run `orchestrator apply {out}` to apply it.")
    if changeset.blocking:
        raise typer.Exit(1)
    if detailed_exitcode and changeset.has_changes:
        raise typer.Exit(2)
    if detailed_exitcode and changeset.risky_unmanaged:
        raise typer.Exit(RISKY_UNMANAGED_EXIT_CODE)


async def _plan(
    plan_file: Path | None,
    wiring: Wiring | None,
    targets: list[str],
    refresh: bool,
    show_progress: bool,
):
    from orchestrator.engine import operations

    ws = open_workspace(plan_file, wiring)
    ui = TerminalUi(progress=show_progress)
    return await operations.plan(ws, ui, targets=targets, refresh_live=refresh)


def _write_changeset(path: Path, changeset) -> None:
    from orchestrator.store.atomic import atomic_write

    try:
        atomic_write(path, changeset.to_json().encode())
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def _show_plan(changeset, calls, notes, json_output: bool, options: GlobalOptions) -> None:
    import json
    import sys

    from orchestrator.engine.render import plan_json, plan_lines

    if json_output:
        data = plan_json(changeset, calls)
        data["interrupted"] = notes
        typer.echo(json.dumps(data, indent=2))
        return
    out = console()
    for message in notes:
        out.print(f"[yellow]note:[/yellow] {message}")
    color = sys.stdout.isatty()
    for line in plan_lines(changeset, color=color):
        out.print(line) if color else typer.echo(line)
    if options.verbose and calls:
        typer.echo(
            "Calls: "
            + ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
            + f" (total {sum(calls.values())})"
        )


def apply(
    ctx: typer.Context,
    source: Path | None = typer.Argument(
        None, metavar="[PLAN | CHANGESET]", help="A plan file, or a changeset saved by plan --out."
    ),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Do not ask for 'yes'."),
    target: list[str] = typer.Option([], "--target", help="Only this label (repeatable)."),
    break_stale_lock: bool = typer.Option(False, "--break-stale-lock", help=BREAK_STALE_LOCK_HELP),
    json_output: bool = typer.Option(
        False, "--json", help="Print the results as JSON (needs --auto-approve or a CHANGESET)."
    ),
) -> None:
    """Plan (or load a saved changeset), show it, ask for 'yes', and carry it out. A saved
    changeset is applied without asking: it was reviewed when it was planned."""
    import asyncio

    options = global_options(ctx)
    configure_logging(options)
    _refuse_flag_word(source, "--auto-approve")
    with user_errors():
        saved, plan_file = _saved_changeset(source)
        if json_output and not (auto_approve or saved is not None):
            usage_error(
                "apply --json cannot ask for 'yes': pass --auto-approve, or apply a changeset "
                "saved with `orchestrator plan --out FILE`."
            )
        quiet = QuietUi() if json_output else None
        ui = quiet or TerminalUi()
        outcome = asyncio.run(
            _apply(
                options.plan_file(plan_file),
                options.wiring,
                ui,
                saved,
                target,
                auto_approve,
                break_stale_lock,
            )
        )
    if outcome is None:
        cancelled("Apply", ui, "--auto-approve")
        raise typer.Exit(1)
    changeset, results = outcome
    if quiet:
        ok = _print_results_json(changeset, results, quiet.notes)
    else:
        ok = _report_apply(changeset, results, streamed=saved is None and auto_approve)
    if not ok:
        raise typer.Exit(1)


def _refuse_flag_word(source: Path | None, flag: str) -> None:
    """`apply --auto-approve true`: the word would be taken for a plan file."""
    from orchestrator.cli.conventions import FALSE_WORDS, TRUE_WORDS

    word = str(source or "").lower()
    if word in TRUE_WORDS + FALSE_WORDS and not Path(str(source)).exists():
        usage_error(
            f"{source!s} is not a plan file: {flag} is a flag and takes no separate value; "
            f"write {flag}, or {flag}=true / {flag}=false."
        )


def _saved_changeset(source: Path | None):
    """(changeset, None) when `source` is a saved changeset, else (None, source)."""
    from orchestrator.engine.changeset import Changeset

    if source is None or source.suffix in (".yaml", ".yml"):
        return None, source
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return Changeset.from_json(text), None
    except ValueError as exc:
        raise UserError(
            f"{source}: not a usable changeset: {exc}. Pass a plan file, or a changeset saved "
            "with `orchestrator plan --out FILE`."
        ) from None


async def _apply(
    plan_file: Path | None,
    wiring: Wiring | None,
    ui,
    saved,
    targets: list[str],
    auto_approve: bool,
    break_stale: bool,
):
    from orchestrator.engine import operations

    ws = open_workspace(plan_file, wiring, failure_of="apply")
    return await operations.apply(
        ws,
        ui,
        saved=saved,
        targets=targets,
        auto_approve=auto_approve,
        break_stale=break_stale,
    )


def _report_apply(changeset, results, *, streamed: bool) -> bool:
    from orchestrator.engine.render import summary

    if not changeset.has_changes:
        if streamed:
            typer.echo(summary(changeset))
        return True
    if streamed:  # the summary comes after the actions
        typer.echo(f"\n{summary(changeset)}")
        return report_results(results, "Apply", blank_line=False)
    return report_results(results, "Apply")


def _print_results_json(changeset, results, notes: list[str]) -> bool:
    """The changeset's actions, each with its outcome, in plan order; True when none
    failed."""
    import json

    from orchestrator.engine.render import results_json

    data = results_json(changeset, results)
    data["notes"] = notes
    typer.echo(json.dumps(data, indent=2))
    return not data["failed"]


def rotate(
    ctx: typer.Context,
    due: bool = typer.Option(False, "--due", help="Rotate every key past its rotate_after."),
    label: list[str] = typer.Option([], "--label", help="Rotate this key now (repeatable)."),
    reload_only: bool = typer.Option(
        False,
        "--reload-only",
        help="Only run the --label keys' reload/check steps for their current key.",
    ),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Do not ask for 'yes'."),
    break_stale_lock: bool = typer.Option(False, "--break-stale-lock", help=BREAK_STALE_LOCK_HELP),
    json_output: bool = typer.Option(
        False, "--json", help="Print the results as JSON (needs --auto-approve)."
    ),
) -> None:
    """Rotate keys: create the next generation, store it, promote it, run its reload/check
    steps, retire the old one."""
    import asyncio

    options = global_options(ctx)
    configure_logging(options)
    if reload_only and (due or not label):
        usage_error("--reload-only takes the keys by --label LABEL, not --due.")
    if not due and not label:
        usage_error("say which keys: --due, or --label LABEL.")
    if json_output and not auto_approve:
        usage_error("rotate --json cannot ask for 'yes': pass --auto-approve.")
    quiet = QuietUi() if json_output else None
    ui = quiet or TerminalUi()
    with user_errors():
        outcome = asyncio.run(
            _rotate(
                options.plan,
                options.wiring,
                ui,
                due,
                label,
                auto_approve,
                break_stale_lock,
                reload_only,
            )
        )
    if outcome is None:
        cancelled("Rotation", ui, "--auto-approve")
        raise typer.Exit(1)
    changeset, results = outcome
    if quiet:
        ok = _print_results_json(changeset, results, quiet.notes)
    elif not changeset.has_changes:
        typer.echo("Nothing to rotate.")
        ok = True
    else:
        ok = report_results(results, "Rotation")
    if not ok:
        raise typer.Exit(1)


async def _rotate(
    plan_file: Path | None,
    wiring: Wiring | None,
    ui,
    due: bool,
    labels: list[str],
    auto_approve: bool,
    break_stale: bool,
    reload_only: bool,
):
    from orchestrator.engine import operations

    ws = open_workspace(plan_file, wiring, failure_of="rotate --due" if due else "rotate")
    return await operations.rotate(
        ws,
        ui,
        due=due,
        labels=labels,
        auto_approve=auto_approve,
        break_stale=break_stale,
        reload_only=reload_only,
    )
