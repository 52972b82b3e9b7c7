"""The `orchestrator` command line: parse, call the engine, render. No logic of its own.

Heavy modules (httpx, pydantic, cryptography, the engine) are imported inside the commands so
that `orchestrator --help` starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="orchestrator",
    help="Plan and apply Binance sub-account API keys from reviewed plan files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
emulator_app = typer.Typer(help="The built-in Binance emulator.", no_args_is_help=True)
app.add_typer(emulator_app, name="emulator")


class Globals:
    plan: Optional[Path] = None
    verbose: bool = False


@app.callback()
def _global_options(
    plan: Optional[Path] = typer.Option(
        None, "--plan", help="Plan file (default: the only plans/*.yaml here)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every exchange call."),
) -> None:
    Globals.plan = plan
    Globals.verbose = verbose


# ---------------------------------------------------------------- emulator (issue 2)


# ---------------------------------------------------------------- config: validate, schema, init (issue 3)


# ---------------------------------------------------------------- plan (issue 3)


def main() -> None:
    app()
