"""How the commands show things: `TerminalUi` for the operations (colour and progress bars on
a terminal, plain lines when piped), the line of each finished action, and the run summary."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


CONFIRM_PROMPT = "\nDo you want to perform these actions? Only 'yes' will be accepted"


class TerminalUi:
    """How operations show, ask and report: colour and progress bars on a terminal, plain
    lines when piped."""

    def __init__(self, *, progress: bool = True) -> None:
        import sys

        self.tty = sys.stdout.isatty()
        self.show_progress = progress and sys.stderr.isatty()
        self.console = console()
        self.answered = False  # whether confirm() read an answer (False: stdin closed)

    def note(self, text: str) -> None:
        typer.echo(text)

    def show(self, changeset, *, with_summary: bool = True, width: int = 0) -> None:
        from orchestrator.engine.render import plan_lines

        lines = plan_lines(changeset, color=self.tty, with_summary=with_summary, width=width)
        for line in lines:
            self.console.print(line) if self.tty else typer.echo(line)

    def confirm(self) -> bool:
        """Read the answer from stdin, a terminal or not (`echo yes | orchestrator apply`).
        Only exactly `yes` goes ahead; anything else, end of input or Ctrl-C declines."""
        import sys

        try:
            answer = typer.prompt(CONFIRM_PROMPT, default="", show_default=False)
        except typer.Abort:  # end of input, or Ctrl-C at the prompt
            typer.echo("")
            return False
        if not sys.stdin.isatty():  # a piped answer is not echoed: end the prompt's line
            typer.echo("")
        self.answered = True
        return answer.rstrip("\r") == "yes"

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
    def executing(self, actions):
        """A line per finished action, in the order the plan showed the actions (each as
        soon as every earlier one has finished), and on a terminal a progress bar below the
        lines. With `actions` None (a streamed apply), lines come as actions finish."""
        if not actions:
            yield print_result
            return
        if not self.tty:
            in_order = InPlanOrder(actions, print_result)
            try:
                yield in_order
            finally:  # an interrupted run still shows every result it has
                in_order.flush()
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = TextColumn("Applying"), BarColumn(), MofNCompleteColumn()
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task("apply", total=len(actions))
            in_order = InPlanOrder(
                actions, lambda result: bar.console.print(result_markup(result), highlight=False)
            )

            def on_result(result) -> None:
                in_order(result)
                bar.advance(task)

            try:
                yield on_result
            finally:
                in_order.flush()

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


class QuietUi:
    """The Ui of a `--json` run: stdout carries only the JSON, so it shows nothing, keeps
    the notes for the JSON, and never asks (`--json` needs the flag that waives asking)."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.answered = False

    def note(self, text: str) -> None:
        self.notes.append(text)

    def show(self, changeset, *, with_summary: bool = True, width: int = 0) -> None:
        pass

    def confirm(self) -> bool:
        return False

    @contextlib.contextmanager
    def progress(self, label: str):
        yield None

    @contextlib.contextmanager
    def executing(self, actions):
        yield lambda result: None

    def deleted(self, entry) -> None:
        pass


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


class InPlanOrder:
    """Passes each action's result on in the order of the actions in the plan: a result
    waits until the results of every earlier action have been passed on."""

    def __init__(self, actions, emit: Callable[[Any], None]) -> None:
        self._position = {id(action): n for n, action in enumerate(actions)}
        self._waiting: dict[int, Any] = {}
        self._next = 0
        self._emit = emit

    def __call__(self, result) -> None:
        position = self._position.get(id(result.action))
        if position is None:
            self._emit(result)
            return
        self._waiting[position] = result
        while self._next in self._waiting:
            self._emit(self._waiting.pop(self._next))
            self._next += 1

    def flush(self) -> None:
        """Pass on what still waits (an earlier action never finished), in plan order."""
        for position in sorted(self._waiting):
            self._emit(self._waiting.pop(position))


def in_plan_order(actions, results) -> list:
    """`results` sorted by the position of their action in `actions`."""
    ordered: list = []
    collect = InPlanOrder(actions, ordered.append)
    for result in results:
        collect(result)
    collect.flush()
    return ordered


def cancelled(what: str, ui: TerminalUi | QuietUi, flag: str) -> None:
    """Say that the user declined, and how to go ahead."""
    why = "the answer was not 'yes'" if ui.answered else "no answer came (end of input)"
    typer.secho(
        f"{what} cancelled: {why}. Only 'yes' confirms; pipe it (echo yes | ...) or pass {flag}.",
        fg="yellow",
        err=True,
    )


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
    def executing(self, actions):
        """A line per finished action, led by the account, in plan order when `actions`
        gives it."""

        def emit(result) -> None:
            mark = typer.style("ok", fg="green") if result.ok else typer.style("FAILED", fg="red")
            typer.echo(f"{self.lead}{mark:>6}  {result_text(result)}")

        if not actions:
            yield emit
            return
        in_order = InPlanOrder(actions, emit)
        try:
            yield in_order
        finally:
            in_order.flush()

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


def print_account_json(data: dict | None) -> None:
    """A `--json` document on stdout (nothing for a run that has none)."""
    import json

    if data is not None:
        typer.echo(json.dumps(data, indent=2))


def report_account_runs(runs, json_output: bool) -> bool:
    """Each account's error, and with --json one document of every account's results; True
    when every account ran and none of its actions failed."""
    if json_output:
        entries = [
            {"account": run.account, **run.result[1]}
            if run.ok
            else {"account": run.account, "error": str(run.error)}
            for run in runs
        ]
        print_account_json({"accounts": entries})
    return report_account_failures(runs) and all(run.result[0] for run in runs if run.ok)
