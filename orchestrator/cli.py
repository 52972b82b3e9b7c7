"""The `orchestrator` command line: parse, call the engine, render. No logic of its own.

Heavy modules (httpx, pydantic, cryptography, the engine) are imported inside the commands so
that `orchestrator --help` starts fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

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
    plan: Path | None = None
    verbose: bool = False


@app.callback()
def _global_options(
    plan: Path | None = typer.Option(
        None, "--plan", help="Plan file (default: the only plans/*.yaml here)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every exchange call."),
) -> None:
    Globals.plan = plan
    Globals.verbose = verbose


# ---------------------------------------------------------------- emulator (issue 2)


@emulator_app.command("serve")
def emulator_serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (keep it loopback)."),
    port: int = typer.Option(8765, "--port", help="TCP port."),
    data: Path = typer.Option(
        Path("state/sandbox-server.json"), "--data", help="Data file (created if missing)."
    ),
    latency_ms: float = typer.Option(0, "--latency-ms", help="Delay added to every answer."),
    fault_rate: float = typer.Option(
        0.0, "--fault-rate", help="Probability (0..1) that a request suffers a random fault."
    ),
    time_scale: float = typer.Option(
        1.0, "--time-scale", help="Rate-limit windows last 60/X seconds."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed for reproducible faults."),
    trusted_ip_header: str | None = typer.Option(
        None,
        "--trusted-ip-header",
        help="Take the caller's IP from this header (e.g. X-Forwarded-For), to test a "
        "whitelisted key from this machine.",
    ),
) -> None:
    """Run the Binance emulator over HTTP until Ctrl-C."""
    from orchestrator.emulator.master import MasterKeyError
    from orchestrator.emulator.persist import DataFileError
    from orchestrator.emulator.serve import serve

    try:
        serve(
            host=host,
            port=port,
            data=data,
            latency_ms=latency_ms,
            fault_rate=fault_rate,
            time_scale=time_scale,
            seed=seed,
            trusted_ip_header=trusted_ip_header,
        )
    except (MasterKeyError, DataFileError, OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


# ---------------------------------------------------------------- config: validate, schema, init (issue 3)


@app.command()
def validate(
    plan: Path | None = typer.Argument(
        None, help="Plan file (default: --plan, or the only plans/*.yaml)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check a plan's schema and policy. Never contacts the exchange."""
    import json

    import yaml

    from orchestrator.config import PlanError, Problem, display_path, find_plan, load_plan

    try:
        path = find_plan(plan or Globals.plan, Path.cwd())
        loaded = load_plan(path)
    except PlanError as exc:
        _report_problems(exc.problems, json_output, None)
        raise typer.Exit(1) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:  # load_plan maps these; a guard
        shown = str(plan or Globals.plan or "plans/")
        _report_problems(
            [Problem(shown, None, None, "", f"cannot read the plan: {exc}", "check the file")],
            json_output,
            None,
        )
        raise typer.Exit(1) from None
    subs, keys = len(loaded.desired.subaccounts), loaded.key_count
    summary = f"{display_path(path)}: valid ({subs} sub-accounts, {keys} keys)"
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "file": display_path(path),
                    "valid": True,
                    "subaccounts": subs,
                    "keys": keys,
                    "problems": [w.to_dict() for w in loaded.warnings],
                },
                indent=2,
            )
        )
        return
    _report_problems(loaded.warnings, False, summary)


def _report_problems(problems, json_output: bool, summary: str | None) -> None:
    """Every problem on its own line (to stderr, in file order), then the summary (stdout)."""
    import json

    if json_output:
        typer.echo(
            json.dumps({"valid": False, "problems": [p.to_dict() for p in problems]}, indent=2)
        )
        return
    for problem in problems:
        color = "red" if problem.is_error else "yellow"
        typer.secho(problem.format(), fg=color, err=True)
    errors = sum(p.is_error for p in problems)
    if errors:
        typer.secho(f"{errors} error(s) found.", fg="red", err=True)
    if summary:
        typer.echo(summary)


@app.command()
def schema() -> None:
    """Print the plan file's JSON Schema (for editors)."""
    import json

    from orchestrator.config import plan_json_schema

    typer.echo(json.dumps(plan_json_schema(), indent=2))


@app.command()
def init(
    directory: Path = typer.Argument(Path("."), help="Project directory (default: here)."),
) -> None:
    """Scaffold plans/example.yaml (sandbox), state/, secrets/ and a .gitignore."""
    from orchestrator.config import init_project

    try:
        results = init_project(directory)
    except OSError as exc:
        typer.secho(
            f"{directory}: cannot create the project: {exc.strerror or exc}", fg="red", err=True
        )
        raise typer.Exit(1) from None
    for path, outcome in results:
        suffix = "/" if path.is_dir() else ""
        typer.echo(f"{outcome:>8}  {path}{suffix}")
    enter = "" if directory == Path(".") else f"cd {directory} && "
    typer.echo(f"Next: {enter}orchestrator validate, then orchestrator plan.")


# ---------------------------------------------------------------- plan (issue 3)


class UserError(Exception):
    """A problem the user can fix; printed as one message, exit 1, no traceback."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn every expected failure into a clear message and exit code 1."""
    from orchestrator.config import PlanError
    from orchestrator.engine.operations import Refused
    from orchestrator.engine.workspace import StaleChangeset
    from orchestrator.exchange.errors import ExchangeError
    from orchestrator.sinks.errors import SinkError
    from orchestrator.store.errors import StoreError

    try:
        yield
    except PlanError as exc:
        for problem in exc.problems:
            typer.secho(problem.format(), fg="red", err=True)
        raise typer.Exit(1) from None
    except (UserError, Refused, StaleChangeset, ExchangeError, StoreError, SinkError) as exc:
        typer.secho(f"Error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:  # the project's files: a missing, unwritable or misplaced path
        where = exc.filename or "a project file"
        typer.secho(
            f"Error: cannot use {where}: {exc.strerror or exc}. Check that the folder exists, "
            "is a directory, and is writable by this user.",
            fg="red",
            err=True,
        )
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.secho(
            "Interrupted. Anything half done is in the journal: the next `orchestrator plan` "
            "or `apply` reconciles it with the live account.",
            fg="yellow",
            err=True,
        )
        raise typer.Exit(130) from None


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _configure_logging() -> None:
    from orchestrator.logs import configure

    configure(verbose=Globals.verbose)


class TerminalUi:
    """How operations show, ask and report: colour and progress bars on a terminal, plain
    lines when piped."""

    def __init__(self, *, progress: bool = True) -> None:
        import sys

        self.tty = sys.stdout.isatty()
        self.show_progress = progress and sys.stderr.isatty()
        self.console = _console()

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
        with Progress(*columns, console=_console(True), transient=True) as bar:
            task = bar.add_task(label, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)

    @contextlib.contextmanager
    def executing(self, total: int | None):
        """A line per finished action and, on a terminal with a known total, a progress bar
        below the lines."""
        if not self.tty or not total:
            yield _print_result
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = TextColumn("Applying"), BarColumn(), MofNCompleteColumn()
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task("apply", total=total)

            def on_result(result) -> None:
                bar.console.print(_result_line(result), highlight=False)
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


@app.command()
def plan(
    plan_file: Path | None = typer.Argument(None, metavar="[PLAN]", help="Plan file."),
    out: Path | None = typer.Option(None, "--out", help="Save the changeset for apply."),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on error."
    ),
    target: list[str] = typer.Option([], "--target", help="Only this label (repeatable)."),
    refresh: bool = typer.Option(True, "--refresh/--no-refresh", help="Read live state first."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Refresh live state, diff it against the plan, and show what would change."""
    import asyncio

    _configure_logging()
    with user_errors():
        changeset, calls, recovered = asyncio.run(
            _plan(plan_file or Globals.plan, target, refresh, not json_output)
        )
        if out:
            _write_changeset(out, changeset)
    _show_plan(changeset, calls, recovered, json_output)
    if out and not json_output:
        typer.echo(f"Saved the changeset to {out}; run `orchestrator apply {out}` to apply it.")
    if changeset.blocking:
        raise typer.Exit(1)
    if detailed_exitcode and changeset.has_changes:
        raise typer.Exit(2)


async def _plan(plan_file, targets, refresh: bool, show_progress: bool):
    from orchestrator.engine import operations
    from orchestrator.engine.workspace import Workspace

    ws = Workspace.open(plan_file)
    ui = TerminalUi(progress=show_progress)
    return await operations.plan(ws, ui, targets=targets, refresh_live=refresh)


def _write_changeset(path: Path, changeset) -> None:
    from orchestrator.store.atomic import atomic_write

    try:
        atomic_write(path, changeset.to_json().encode())
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def _show_plan(changeset, calls, recovered, json_output: bool) -> None:
    import json
    import sys

    from orchestrator.engine.render import plan_json, plan_lines

    if json_output:
        data = plan_json(changeset, calls)
        data["recovered"] = recovered
        typer.echo(json.dumps(data, indent=2))
        return
    console = _console()
    for message in recovered:
        console.print(f"[yellow]recovered:[/yellow] {message}")
    color = sys.stdout.isatty()
    for line in plan_lines(changeset, color=color):
        console.print(line) if color else typer.echo(line)
    if Globals.verbose and calls:
        typer.echo(
            "Calls: "
            + ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
            + f" (total {sum(calls.values())})"
        )


# ---------------------------------------------------------------- apply (issue 4)


@app.command()
def apply(
    source: Path | None = typer.Argument(
        None, metavar="[PLAN | CHANGESET]", help="A plan file, or a changeset saved by plan --out."
    ),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Do not ask for 'yes'."),
    target: list[str] = typer.Option([], "--target", help="Only this label (repeatable)."),
    break_stale_lock: bool = typer.Option(
        False, "--break-stale-lock", help="Remove a lock left by a dead process on this host."
    ),
) -> None:
    """Plan (or load a saved changeset), show it, ask for 'yes', and carry it out."""
    import asyncio

    _configure_logging()
    with user_errors():
        saved, plan_file = _saved_changeset(source)
        ok = asyncio.run(
            _apply(plan_file or Globals.plan, saved, target, auto_approve, break_stale_lock)
        )
    if not ok:
        raise typer.Exit(1)


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


async def _apply(plan_file, saved, targets, auto_approve: bool, break_stale: bool) -> bool:
    from orchestrator.engine import operations
    from orchestrator.engine.render import summary
    from orchestrator.engine.workspace import Workspace

    ws = Workspace.open(plan_file)
    _need_confirmation_channel(auto_approve, "--auto-approve")
    outcome = await operations.apply(
        ws,
        TerminalUi(),
        saved=saved,
        targets=targets,
        auto_approve=auto_approve,
        break_stale=break_stale,
    )
    if outcome is None:
        typer.echo("Apply cancelled.")
        return False
    changeset, results = outcome
    if not changeset.has_changes:
        if saved is None and auto_approve:
            typer.echo(summary(changeset))
        return True
    if saved is None and auto_approve:  # streamed: the summary comes after the actions
        typer.echo(f"\n{summary(changeset)}")
        return _report_results(results, "Apply", blank_line=False)
    return _report_results(results, "Apply")


def _print_result(result) -> None:
    mark = typer.style("ok", fg="green") if result.ok else typer.style("FAILED", fg="red")
    typer.echo(f"{mark:>6}  {_result_text(result)}")


def _result_line(result) -> str:
    """The line of a finished action as rich markup."""
    from rich.markup import escape

    mark = "[green]    ok[/green]" if result.ok else "[red]FAILED[/red]"
    return f"{mark}  {escape(_result_text(result))}"


def _result_text(result) -> str:
    address = result.action.address
    message = result.message.removeprefix(f"{address}: ")
    return f"{result.action.kind.value:<18} {address}: {message}"


# ---------------------------------------------------------------- import, state, log (issue 4)

state_app = typer.Typer(
    help="Inspect state, or rebuild it from live apiNames.", no_args_is_help=True
)
log_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(state_app, name="state")
app.add_typer(log_app, name="log")


@app.command("import")
def import_(
    subaccount: str | None = typer.Option(None, "--subaccount", help="Plan sub-account name."),
    apikey: str | None = typer.Option(None, "--apikey", help="The live API key to adopt."),
    label: str | None = typer.Option(None, "--label", help="The plan label to bind it to."),
    all_keys: bool = typer.Option(
        False, "--all", help="Adopt every key whose apiName names a label."
    ),
) -> None:
    """Adopt existing live keys into state."""
    import asyncio

    _configure_logging()
    if all_keys == bool(subaccount or apikey or label) or (
        not all_keys and not (subaccount and apikey and label)
    ):
        typer.secho(
            "Error: use either --all, or --subaccount, --apikey and --label together.",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
    with user_errors():
        messages = asyncio.run(_adopt("import", subaccount, apikey, label))
    for message in messages:
        typer.echo(message)


@state_app.command("rebuild")
def state_rebuild() -> None:
    """Rebuild state from the apiNames of live keys (when the state file is lost)."""
    import asyncio

    _configure_logging()
    with user_errors():
        messages = asyncio.run(_adopt("state rebuild", None, None, None))
    for message in messages or ["State already matches the live keys."]:
        typer.echo(message)


async def _adopt(command: str, subaccount, apikey, label) -> list[str]:
    from orchestrator.engine import operations
    from orchestrator.engine.workspace import Workspace

    ws = Workspace.open(Globals.plan)
    return await operations.adopt(ws, command, subaccount=subaccount, api_key=apikey, label=label)


@state_app.command("restore")
def state_restore() -> None:
    """Put the backup of the state file back (the damaged file is kept beside it)."""
    from orchestrator.config import find_plan
    from orchestrator.store.files import LocalFileBackend

    with user_errors():
        plan = find_plan(Globals.plan, Path.cwd()).stem
        backend = LocalFileBackend(Path.cwd())
        with backend.lock(plan, "state restore"):
            state = backend.restore_backup(plan)
    typer.echo(
        f"Restored {backend.state_path(plan)} from its backup (serial {state.serial}). "
        "Run `orchestrator plan` to see how it compares with the live account."
    )


@state_app.command("list")
def state_list(json_output: bool = typer.Option(False, "--json")) -> None:
    """The keys state records, one per line."""
    import json

    from orchestrator.store.audit import mask_key

    with user_errors():
        state = _load_state_only()
    records = sorted(state.keys.values(), key=lambda r: (r.subaccount, r.label)) if state else []
    if json_output:
        typer.echo(json.dumps([_record_json(r) for r in records], indent=2))
        return
    if not records:
        typer.echo("State records no keys.")
        return
    for r in records:
        retired = f"; {len(r.previous)} previous" if r.previous else ""
        typer.echo(
            f"{r.subaccount + '/' + r.label:<32} g{r.generation:<3} {mask_key(r.api_key)}  "
            f"created {r.created_at:%Y-%m-%d %H:%M}  {r.sink}{retired}"
        )


@state_app.command("show")
def state_show(label: str = typer.Argument(..., help="Label or sub-account/label.")) -> None:
    """One key's record (it holds no secret)."""
    import json

    with user_errors():
        state = _load_state_only()
        matches = [r for a, r in (state.keys.items() if state else []) if label in (a, r.label)]
        if len(matches) != 1:
            known = ", ".join(sorted(state.keys)) if state else "none"
            what = "several keys" if matches else "no key"
            raise UserError(f"{what} labelled {label!r} in state (known: {known})")
    typer.echo(json.dumps(_record_json(matches[0]), indent=2))


def _record_json(record) -> dict:
    from orchestrator.store.audit import mask_key

    data = record.model_dump(mode="json")
    data["api_key"] = mask_key(record.api_key)
    for old in data["previous"]:
        old["api_key"] = mask_key(old["api_key"])
    return data


def _load_state_only():
    from orchestrator.config import find_plan
    from orchestrator.store.files import LocalFileBackend

    path = find_plan(Globals.plan, Path.cwd())
    return LocalFileBackend(Path.cwd()).load_state(path.stem)


@log_app.command("verify")
def log_verify() -> None:
    """Check the audit log's hash chain; name the first bad line."""
    from orchestrator.store.files import LocalFileBackend

    with user_errors():
        result = LocalFileBackend(Path.cwd()).verify_audit()
    if result.ok:
        typer.echo(f"state/audit.jsonl: intact ({result.lines} lines).")
        return
    typer.secho(
        f"state/audit.jsonl: line {result.first_bad_line}: {result.reason}", fg="red", err=True
    )
    raise typer.Exit(1)


# ---------------------------------------------------------------- rotate, audit, lockdown (issue 5)


@app.command()
def rotate(
    due: bool = typer.Option(False, "--due", help="Rotate every key past its rotate_after."),
    label: list[str] = typer.Option([], "--label", help="Rotate this key now (repeatable)."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Do not ask for 'yes'."),
    break_stale_lock: bool = typer.Option(
        False, "--break-stale-lock", help="Remove a lock left by a dead process on this host."
    ),
) -> None:
    """Rotate keys: create the next generation, store it, promote it, retire the old one."""
    import asyncio

    _configure_logging()
    if not due and not label:
        typer.secho("Error: say which keys: --due, or --label LABEL.", fg="red", err=True)
        raise typer.Exit(1)
    with user_errors():
        ok = asyncio.run(_rotate(due, label, auto_approve, break_stale_lock))
    if not ok:
        raise typer.Exit(1)


async def _rotate(due: bool, labels: list[str], auto_approve: bool, break_stale: bool) -> bool:
    from orchestrator.engine import operations
    from orchestrator.engine.workspace import Workspace

    ws = Workspace.open(Globals.plan)
    _need_confirmation_channel(auto_approve, "--auto-approve")
    outcome = await operations.rotate(
        ws,
        TerminalUi(),
        due=due,
        labels=labels,
        auto_approve=auto_approve,
        break_stale=break_stale,
    )
    if outcome is None:
        typer.echo("Rotation cancelled.")
        return False
    changeset, results = outcome
    if not changeset.has_changes:
        typer.echo("Nothing to rotate.")
        return True
    return _report_results(results, "Rotation")


@app.command()
def audit(
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
    fail_on: str | None = typer.Option(
        None, "--fail-on", help="Exit 1 if any finding is this severe: low, medium, high, critical."
    ),
) -> None:
    """Security hygiene report: unknown, widened, unwhitelisted, overdue and orphaned keys."""
    import asyncio

    from orchestrator.engine.changeset import Severity

    _configure_logging()
    threshold = None
    if fail_on is not None:
        try:
            threshold = Severity(fail_on.lower())
        except ValueError:
            typer.secho(
                f"Error: --fail-on {fail_on}: use low, medium, high or critical.",
                fg="red",
                err=True,
            )
            raise typer.Exit(1) from None
    with user_errors():
        found, calls = asyncio.run(_audit())
    _show_findings(found, calls, json_output)
    if threshold and any(f.severity.rank >= threshold.rank for f in found):
        raise typer.Exit(1)


async def _audit():
    from orchestrator.engine import operations
    from orchestrator.engine.workspace import Workspace

    return await operations.audit(Workspace.open(Globals.plan))


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
    colors = {"critical": "red", "high": "red", "medium": "yellow", "low": "cyan", "info": None}
    for f in found:
        head = typer.style(f"{f.severity.value.upper():<8}", fg=colors[f.severity.value], bold=True)
        typer.echo(f"{head} {f.kind:<15} {f.address}: {f.message}")
        if f.fix:
            typer.echo(f"{'':<8} {'':<15} fix: {f.fix}")
    counts = Counter(f.severity.value for f in found)
    typer.echo("\n" + ", ".join(f"{n} {s}" for s, n in counts.most_common()) + ".")


@app.command()
def lockdown(
    subaccount: list[str] = typer.Option(
        [], "--subaccount", help="Only this sub-account (plan name or email; repeatable)."
    ),
    all_keys: bool = typer.Option(False, "--all", help="Required: every key in scope goes."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    break_stale_lock: bool = typer.Option(
        False, "--break-stale-lock", help="Remove a lock left by a dead process on this host."
    ),
) -> None:
    """Delete every key in scope, managed or not, as fast as the rate limits allow."""
    import asyncio

    _configure_logging()
    if not all_keys:
        typer.secho(
            "Error: lockdown deletes every key in scope, managed or not; pass --all to "
            "confirm (and --subaccount NAME to narrow the scope).",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
    with user_errors():
        ok = asyncio.run(_lockdown(subaccount, yes, break_stale_lock))
    if not ok:
        raise typer.Exit(1)


async def _lockdown(names: list[str], yes: bool, break_stale: bool) -> bool:
    from orchestrator.engine import operations
    from orchestrator.engine.workspace import Workspace

    ws = Workspace.open(Globals.plan)
    _need_confirmation_channel(yes, "--yes")
    deleted = await operations.lockdown(
        ws, TerminalUi(), names=names, yes=yes, break_stale=break_stale
    )
    if deleted is None:
        typer.echo("Lockdown cancelled.")
        return False
    failed = [d for d in deleted if d.error]
    typer.echo(f"\nLockdown: {len(deleted) - len(failed)} key(s) deleted, {len(failed)} failed.")
    typer.echo("To recreate the planned keys with fresh material: orchestrator apply")
    return not failed


def _need_confirmation_channel(skip: bool, flag: str) -> None:
    import sys

    if not skip and not sys.stdin.isatty():
        raise UserError(f"this needs confirmation but stdin is not a terminal; pass {flag}")


def _report_results(results, what: str, *, blank_line: bool = True) -> bool:
    failed = [r for r in results if not r.ok]
    lead = "\n" if blank_line else ""
    typer.echo(f"{lead}{what} complete: {len(results) - len(failed)} done, {len(failed)} failed.")
    return not failed


def main() -> None:
    app()
