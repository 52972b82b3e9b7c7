"""What every command shares: the global options (typer's context object), logging set up
from them, and the workspace they name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from orchestrator.engine.workspace import Workspace
    from orchestrator.wiring import Wiring

BREAK_STALE_LOCK_HELP = "Take over a lock held from another host, lease or not."


@dataclass(frozen=True)
class GlobalOptions:
    """The options given before the command, as in `orchestrator --plan FILE -v plan`."""

    plan: Path | None = None
    verbose: bool = False
    wiring: Wiring | None = None  # the object main() or app(obj=...) was given; None: default
    accounts: tuple[str, ...] = ()  # `--account`: only these master accounts; (): all

    def plan_file(self, given: Path | None) -> Path | None:
        """The plan a command names itself, else the one given by `--plan`."""
        return given or self.plan


def global_options(ctx: typer.Context) -> GlobalOptions:
    """This invocation's global options; the defaults when the app's callback did not run."""
    return ctx.find_object(GlobalOptions) or GlobalOptions()


def configure_logging(options: GlobalOptions) -> None:
    from orchestrator.logs import configure

    configure(verbose=options.verbose)


def open_workspaces(
    plan_file: Path | None, options: GlobalOptions, *, failure_of: str = ""
) -> list[Workspace]:
    """A workspace per master account the command runs on: those `--account` names, else
    every account of the plan (one for a plan without `accounts:`). A command that notifies
    its failures names itself in `failure_of`, so that a plan it cannot open is notified too."""
    from orchestrator.wiring import Wiring

    return (options.wiring or Wiring()).open_accounts(
        plan_file, options.accounts, failure_of=failure_of
    )


def several_accounts(workspaces: list[Workspace]) -> bool:
    """Whether output is grouped by account: the plan has `accounts:`."""
    return any(ws.account is not None for ws in workspaces)
