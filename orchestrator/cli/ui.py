"""How the commands show things: `TerminalUi` for the operations (colour and progress bars on
a terminal, plain lines when piped), the line of each finished action, and the run summary."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class TerminalUi:
    """How operations show, ask and report: colour and progress bars on a terminal, plain
    lines when piped."""

    def __init__(self, *, progress: bool = True) -> None:
        import sys

        self.tty = sys.stdout.isatty()
        self.show_progress = progress and sys.stderr.isatty()
        self.console = console()

    def note(self, text: str) -> None:
        typer.echo(text)

    def show(self, changeset, *, with_summary: bool = True, width: int = 0) -> None:
        from orchestrator.engine.render import plan_lines

        lines = plan_lines(changeset, color=self.tty, with_summary=with_summary, width=width)
        for line in lines:
            self.console.print(line) if self.tty else typer.echo(line)

    def confirm(self) -> bool:
        answer = typer.prompt(
            "\nDo you want to perform these actions? Only 'yes' will be accepted",
            default="",
            show_default=False,
        )
        return answer.strip() == "yes"

    @contextlib.contextmanager
    def progress(self, label: str):
        """A progress bar on stderr while refreshing, only on a terminal."""
        if not self.show_progress:
            yield None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = TextColumn(label), BarColumn(), MofNCompleteColumn()
        with Progress(*columns, console=console(True), transient=True) as bar:
            task = bar.add_task(label, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)

    @contextlib.contextmanager
    def executing(self, total: int | None):
        """A line per finished action and, on a terminal with a known total, a progress bar
        below the lines."""
        if not self.tty or not total:
            yield print_result
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = TextColumn("Applying"), BarColumn(), MofNCompleteColumn()
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task("apply", total=total)

            def on_result(result) -> None:
                bar.console.print(result_markup(result), highlight=False)
                bar.advance(task)

            yield on_result

    def deleted(self, entry) -> None:
        from orchestrator.store.audit import mask_key

        mark = (
            typer.style("FAILED", fg="red") if entry.error else typer.style("deleted", fg="green")
        )
        managed = f" (managed as {entry.managed_as})" if entry.managed_as else ""
        error = f": {entry.error or entry.warning}" if entry.error or entry.warning else ""
        typer.echo(
            f"{mark:>8}  {entry.email} {entry.api_name} {mask_key(entry.api_key)}{managed}{error}"
        )


def print_result(result) -> None:
    mark = typer.style("ok", fg="green") if result.ok else typer.style("FAILED", fg="red")
    typer.echo(f"{mark:>6}  {result_text(result)}")


def result_markup(result) -> str:
    """The line of a finished action as rich markup."""
    from rich.markup import escape

    mark = "[green]    ok[/green]" if result.ok else "[red]FAILED[/red]"
    return f"{mark}  {escape(result_text(result))}"


def result_text(result) -> str:
    address = result.action.address
    message = result.message.removeprefix(f"{address}: ")
    return f"{result.action.kind.value:<18} {address}: {message}"


def report_results(results, what: str, *, blank_line: bool = True) -> bool:
    """Print how many actions were done and failed; True when none failed."""
    failed = [r for r in results if not r.ok]
    lead = "\n" if blank_line else ""
    typer.echo(f"{lead}{what} complete: {len(results) - len(failed)} done, {len(failed)} failed.")
    return not failed


def need_confirmation_channel(skip: bool, flag: str) -> None:
    """Refuse to ask for 'yes' where no one can answer (stdin is not a terminal)."""
    import sys

    if not skip and not sys.stdin.isatty():
        raise UserError(f"this needs confirmation but stdin is not a terminal; pass {flag}")


class AccountUi(TerminalUi):
    """The Ui of one master account among several running at once: plain lines, each led
    by the account's name so that interleaved output stays readable; no progress bars."""

    def __init__(self, account: str | None) -> None:
        super().__init__(progress=False)
        self.tty = False
        self.lead = f"[{account}] " if account else ""

    def note(self, text: str) -> None:
        typer.echo(self.lead + text)

    def show(self, changeset, *, with_summary: bool = True, width: int = 0) -> None:
        from orchestrator.engine.render import plan_lines

        for line in plan_lines(changeset, color=False, with_summary=with_summary, width=width):
            typer.echo(self.lead + line if line else line)

    @contextlib.contextmanager
    def executing(self, total: int | None):
        def on_result(result) -> None:
            mark = typer.style("ok", fg="green") if result.ok else typer.style("FAILED", fg="red")
            typer.echo(f"{self.lead}{mark:>6}  {result_text(result)}")

        yield on_result

    def deleted(self, entry) -> None:
        typer.echo(self.lead, nl=False)
        super().deleted(entry)


def account_heading(account: str | None) -> None:
    """The line that opens one account's part of a command's output."""
    if account is not None:
        typer.echo(typer.style(f"== account {account} ==", bold=True))


def report_account_failures(runs) -> bool:
    """Print each account's error (an AccountRun without a result); True when none failed."""
    from orchestrator.cli.errors import failure_for, project_errors

    table = project_errors()
    failed = [run for run in runs if not run.ok]
    for run in failed:
        failure = failure_for(run.error, table)
        if failure is None:
            raise run.error
        for line in failure.lines:
            typer.secho(f"[{run.account}] {line}", fg=failure.color, err=True)
    return not failed
