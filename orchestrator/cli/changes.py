"""`plan`, `apply` and `rotate`: show what would change, then carry it out."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrator.cli.context import (
    BREAK_STALE_LOCK_HELP,
    GlobalOptions,
    configure_logging,
    global_options,
    open_workspaces,
    several_accounts,
)
from orchestrator.cli.errors import UserError, usage_error, user_errors
from orchestrator.cli.ui import (
    AccountUi,
    QuietUi,
    TerminalUi,
    account_heading,
    cancelled,
    console,
    print_account_json,
    report_account_failures,
    report_account_runs,
    report_results,
)

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
        runs = asyncio.run(
            _plan(options.plan_file(plan_file), options, target, refresh, not json_output, out)
        )
        done = [run for run in runs if run.ok]
        if out and done:
            _write_changeset(out, done[0].result[0])
    if len(runs) == 1 and runs[0].account is None:
        changeset, calls, notes = runs[0].result
        _show_plan(changeset, calls, notes, json_output, options)
    else:
        _show_account_plans(runs, json_output, options)
    if out and not json_output and done:
        typer.echo(f"Saved the changeset to {out}; run `orchestrator apply {out}` to apply it.")
    changesets = [run.result[0] for run in done]
    if len(done) < len(runs) or any(c.blocking for c in changesets):
        raise typer.Exit(1)
    if detailed_exitcode and any(c.has_changes for c in changesets):
        raise typer.Exit(2)
    if detailed_exitcode and any(c.risky_unmanaged for c in changesets):
        raise typer.Exit(RISKY_UNMANAGED_EXIT_CODE)


async def _plan(
    plan_file: Path | None,
    options: GlobalOptions,
    targets: list[str],
    refresh: bool,
    show_progress: bool,
    out: Path | None,
):
    """A run per account: (changeset, calls per endpoint, notes). A plan without
    `accounts:` runs as one account whose errors are raised, not collected."""
    from orchestrator.engine import operations
    from orchestrator.engine.accounts import AccountRun, each_account

    workspaces = open_workspaces(plan_file, options)
    if not several_accounts(workspaces):
        ui = TerminalUi(progress=show_progress)
        result = await operations.plan(workspaces[0], ui, targets=targets, refresh_live=refresh)
        return [AccountRun(None, result)]
    if out and len(workspaces) > 1:
        raise UserError(
            "--out saves one account's changeset; name it with `orchestrator --account NAME "
            "plan --out FILE`"
        )
    scoped = scope_targets(workspaces, targets)
    return await each_account(
        [ws for ws in workspaces if ws.name in scoped],
        lambda ws: operations.plan(
            ws, AccountUi(ws.account), targets=scoped[ws.name], refresh_live=refresh
        ),
    )


def scope_targets(workspaces, targets: list[str]) -> dict:
    """The `--target`s of each account to run, by state id: those that are its own labels.
    An account none of whose labels is targeted is left out; a target of no account is
    refused."""
    from orchestrator.engine import operations

    if not targets:
        return {ws.name: [] for ws in workspaces}
    scoped = {}
    for ws in workspaces:
        keys = ws.plan.desired.keys()
        mine = [t for t in targets if t in {k.label for k in keys} | {k.address for k in keys}]
        if mine:
            scoped[ws.name] = mine
    named = {t for mine in scoped.values() for t in mine}
    unknown = [t for t in targets if t not in named]
    if unknown:
        raise operations.Refused(
            f"--target {', '.join(unknown)}: no such label in any account of "
            f"{workspaces[0].plan.path.name}"
        )
    return scoped


def _show_account_plans(runs, json_output: bool, options: GlobalOptions) -> None:
    """Each account's plan under its heading, or in JSON one entry per account."""
    import json

    from orchestrator.engine.render import plan_json

    if json_output:
        entries = []
        for run in runs:
            if not run.ok:
                entries.append({"account": run.account, "error": str(run.error)})
                continue
            changeset, calls, notes = run.result
            data = plan_json(changeset, calls)
            data["interrupted"] = notes
            entries.append({"account": run.account, **data})
        typer.echo(json.dumps({"accounts": entries}, indent=2))
        report_account_failures(runs)
        return
    for run in runs:
        account_heading(run.account)
        if run.ok:
            changeset, calls, notes = run.result
            _show_plan(changeset, calls, notes, False, options)
    report_account_failures(runs)


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
        ok = asyncio.run(
            _apply_accounts(
                options.plan_file(plan_file),
                options,
                saved,
                target,
                auto_approve,
                break_stale_lock,
                json_output,
            )
        )
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


def _ui_for(ws, json_output: bool, several: bool):
    """How one account's run shows: nothing but JSON with --json, lines led by the account
    when several run at once, else the terminal."""
    if json_output:
        return QuietUi()
    return AccountUi(ws.account) if several else TerminalUi()


async def _apply_accounts(
    plan_file: Path | None,
    options: GlobalOptions,
    saved,
    targets: list[str],
    auto_approve: bool,
    break_stale: bool,
    json_output: bool,
) -> bool:
    """Apply every account of the plan: with --auto-approve all at once, else one after the
    other, each shown and confirmed on its own. A saved changeset applies to its account."""
    from orchestrator.engine.accounts import each_account

    workspaces = open_workspaces(plan_file, options, failure_of="apply")
    if not several_accounts(workspaces) or saved is not None:
        [ws] = _account_of_changeset(workspaces, saved) if saved else workspaces
        ok, data = await _apply(
            ws, _ui_for(ws, json_output, False), saved, targets, auto_approve, break_stale
        )
        print_account_json(data)
        return ok
    scoped = scope_targets(workspaces, targets)
    chosen = [ws for ws in workspaces if ws.name in scoped]
    if auto_approve:
        runs = await each_account(
            chosen,
            lambda ws: _apply(
                ws, _ui_for(ws, json_output, True), None, scoped[ws.name], True, break_stale
            ),
        )
        return report_account_runs(runs, json_output)
    ok = True
    for ws in chosen:
        account_heading(ws.account)
        runs = await each_account(
            [ws], lambda w: _apply(w, TerminalUi(), None, scoped[w.name], False, break_stale)
        )
        ok = report_account_runs(runs, False) and ok
    return ok


def _account_of_changeset(workspaces, saved) -> list:
    """The workspace a saved changeset was planned for: with several accounts, by the state
    id it records; with one, the plan's own."""
    if not several_accounts(workspaces):
        return workspaces
    chosen = [ws for ws in workspaces if ws.name == saved.plan_name]
    if not chosen:
        names = ", ".join(ws.name for ws in workspaces)
        raise UserError(
            f"the changeset was made for {saved.plan_name!r}, which is none of this plan's "
            f"accounts ({names}); run `orchestrator --account NAME plan --out FILE` again"
        )
    return chosen


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
    ws, ui, saved, targets: list[str], auto_approve: bool, break_stale: bool
) -> tuple[bool, dict | None]:
    """(whether every action succeeded, the --json document or None)."""
    from orchestrator.engine import operations

    outcome = await operations.apply(
        ws,
        ui,
        saved=saved,
        targets=targets,
        auto_approve=auto_approve,
        break_stale=break_stale,
    )
    lead = getattr(ui, "lead", "")
    if outcome is None:
        cancelled(f"{lead}Apply", ui, "--auto-approve")
        return False, None
    changeset, results = outcome
    if isinstance(ui, QuietUi):
        return _results_json(changeset, results, ui.notes)
    streamed = saved is None and auto_approve
    return _report_apply(changeset, results, streamed=streamed, lead=lead), None


def _report_apply(changeset, results, *, streamed: bool, lead: str = "") -> bool:
    from orchestrator.engine.render import summary

    if not changeset.has_changes:
        if streamed:
            typer.echo(lead + summary(changeset))
        return True
    if streamed:  # the summary comes after the actions
        typer.echo(f"\n{lead}{summary(changeset)}")
        return report_results(results, f"{lead}Apply", blank_line=False)
    return report_results(results, f"{lead}Apply")


def _results_json(changeset, results, notes: list[str]) -> tuple[bool, dict]:
    """The changeset's actions, each with its outcome, in plan order; and whether none
    failed."""
    from orchestrator.engine.render import results_json

    data = results_json(changeset, results)
    data["notes"] = notes
    return not data["failed"], data


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
    with user_errors():
        ok = asyncio.run(
            _rotate_accounts(
                options, due, label, auto_approve, break_stale_lock, reload_only, json_output
            )
        )
    if not ok:
        raise typer.Exit(1)


async def _rotate_accounts(
    options: GlobalOptions,
    due: bool,
    labels: list[str],
    auto_approve: bool,
    break_stale: bool,
    reload_only: bool,
    json_output: bool,
) -> bool:
    """Rotate in every account: with --auto-approve all at once, else one after the other."""
    from orchestrator.engine.accounts import each_account

    command = "rotate --due" if due else "rotate"
    workspaces = open_workspaces(options.plan, options, failure_of=command)

    def run(ws, ui, labels_: list[str], approve: bool):
        return _rotate(ws, ui, due, labels_, approve, break_stale, reload_only)

    if not several_accounts(workspaces):
        ws = workspaces[0]
        ok, data = await run(ws, _ui_for(ws, json_output, False), labels, auto_approve)
        print_account_json(data)
        return ok
    scoped = scope_targets(workspaces, labels)
    chosen = [ws for ws in workspaces if ws.name in scoped]
    if auto_approve:
        runs = await each_account(
            chosen, lambda ws: run(ws, _ui_for(ws, json_output, True), scoped[ws.name], True)
        )
        return report_account_runs(runs, json_output)
    ok = True
    for ws in chosen:
        account_heading(ws.account)
        runs = await each_account([ws], lambda w: run(w, TerminalUi(), scoped[w.name], False))
        ok = report_account_runs(runs, False) and ok
    return ok


async def _rotate(
    ws,
    ui,
    due: bool,
    labels: list[str],
    auto_approve: bool,
    break_stale: bool,
    reload_only: bool,
) -> tuple[bool, dict | None]:
    """(whether every action succeeded, the --json document or None)."""
    from orchestrator.engine import operations

    outcome = await operations.rotate(
        ws,
        ui,
        due=due,
        labels=labels,
        auto_approve=auto_approve,
        break_stale=break_stale,
        reload_only=reload_only,
    )
    lead = getattr(ui, "lead", "")
    if outcome is None:
        cancelled(f"{lead}Rotation", ui, "--auto-approve")
        return False, None
    changeset, results = outcome
    if isinstance(ui, QuietUi):
        return _results_json(changeset, results, ui.notes)
    if not changeset.has_changes:
        typer.echo(f"{lead}Nothing to rotate.")
        return True, None
    return report_results(results, f"{lead}Rotation"), None
