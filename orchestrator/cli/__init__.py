"""The `orchestrator` command line: parse, call the engine, render. No logic of its own.

Heavy modules (httpx, pydantic, cryptography, the engine) are imported inside the commands so
that `orchestrator --help` starts fast. Commands are registered here, in the order `--help`
lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from orchestrator.cli import changes, emulator, preflight, project, security, state
from orchestrator.cli.context import GlobalOptions
from orchestrator.cli.conventions import Group

if TYPE_CHECKING:
    from orchestrator.wiring import Wiring

app = typer.Typer(
    name="orchestrator",
    help="Plan and apply Binance sub-account API keys from reviewed plan files.",
    no_args_is_help=True,
    cls=Group,
    pretty_exceptions_enable=False,
    # click's plain help: flags show as flags (not `<bool>`), and typer's rich help would
    # cost ~0.15 s of imports
    rich_markup_mode=None,
)


def _show_version(asked: bool) -> None:
    if asked:
        from orchestrator import __version__

        typer.echo(f"orchestrator {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    plan: Path | None = typer.Option(
        None, "--plan", help="Plan file (default: the only plans/*.yaml here)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every exchange call."),
    _version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_show_version, help="Print the version."
    ),
    account: list[str] = typer.Option(
        [], "--account", help="Only this master account of the plan (repeatable; default: all)."
    ),
) -> None:
    ctx.obj = GlobalOptions(plan=plan, verbose=verbose, wiring=ctx.obj, accounts=tuple(account))


app.command()(project.validate)
app.command()(preflight.check)
app.command()(project.schema)
app.command()(project.init)
app.command("write-paths")(project.write_paths)
app.command()(changes.plan)
app.command()(changes.apply)
app.command("import")(state.import_)
app.command()(changes.rotate)
app.command()(security.audit)
app.command()(security.lockdown)
app.add_typer(emulator.emulator_app, name="emulator")
app.add_typer(state.state_app, name="state")
app.add_typer(state.log_app, name="log")


def main(wiring: Wiring | None = None) -> None:
    """The command line; `wiring` (also accepted as `app(obj=...)`) replaces the default
    exchange factory and clock, for tests and embedding."""
    app(obj=wiring)


__all__ = ["app", "main"]
