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

if TYPE_CHECKING:
    from orchestrator.wiring import Wiring

app = typer.Typer(
    name="orchestrator",
    help="Plan and apply Binance sub-account API keys from reviewed plan files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: typer's rich help costs ~0.15 s of imports
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    plan: Path | None = typer.Option(
        None, "--plan", help="Plan file (default: the only plans/*.yaml here)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every exchange call."),
) -> None:
    ctx.obj = GlobalOptions(plan=plan, verbose=verbose, wiring=ctx.obj)


app.command()(project.validate)
app.command()(preflight.check)
app.command()(project.schema)
app.command()(project.init)
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
