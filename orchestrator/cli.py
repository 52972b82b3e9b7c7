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
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for reproducible faults."),
) -> None:
    """Run the Binance emulator over HTTP until Ctrl-C."""
    from orchestrator.emulator.master import MasterKeyError
    from orchestrator.emulator.persist import DataFileError
    from orchestrator.emulator.serve import serve

    try:
        serve(host=host, port=port, data=data, latency_ms=latency_ms, fault_rate=fault_rate,
              time_scale=time_scale, seed=seed)
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
        _report_problems([Problem(shown, None, None, "", f"cannot read the plan: {exc}",
                                  "check the file")], json_output, None)
        raise typer.Exit(1) from None
    subs, keys = len(loaded.desired.subaccounts), loaded.key_count
    summary = f"{display_path(path)}: valid ({subs} sub-accounts, {keys} keys)"
    if json_output:
        typer.echo(json.dumps({"file": display_path(path), "valid": True, "subaccounts": subs,
                               "keys": keys, "problems": [w.to_dict() for w in loaded.warnings]},
                              indent=2))
        return
    _report_problems(loaded.warnings, False, summary)


def _report_problems(problems, json_output: bool, summary: str | None) -> None:
    """Every problem on its own line (to stderr, in file order), then the summary (stdout)."""
    import json

    if json_output:
        typer.echo(json.dumps({"valid": False, "problems": [p.to_dict() for p in problems]},
                              indent=2))
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
        typer.secho(f"{directory}: cannot create the project: {exc.strerror or exc}",
                    fg="red", err=True)
        raise typer.Exit(1) from None
    for path, outcome in results:
        suffix = "/" if path.is_dir() else ""
        typer.echo(f"{outcome:>8}  {path}{suffix}")
    enter = "" if directory == Path(".") else f"cd {directory} && "
    typer.echo(f"Next: {enter}orchestrator validate, then orchestrator plan.")



# ---------------------------------------------------------------- plan (issue 3)


def main() -> None:
    app()
