"""`validate`, `schema` and `init`: the plan files themselves. None contacts the exchange."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrator.cli.context import global_options
from orchestrator.cli.errors import Failure


def validate(
    ctx: typer.Context,
    plan: Path | None = typer.Argument(
        None, help="Plan file (default: --plan, or the only plans/*.yaml)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check a plan's schema and policy. Never contacts the exchange."""
    import json

    import yaml

    from orchestrator.config import PlanError, Problem, display_path, find_plan, load_plan
    from orchestrator.config.problems import sort_problems
    from orchestrator.engine.sinkcheck import sink_problems

    plan = global_options(ctx).plan_file(plan)
    try:
        path = find_plan(plan, Path.cwd())
        loaded = load_plan(path)
        problems = sort_problems(
            [*loaded.warnings, *sink_problems(loaded, Path.cwd(), environment_errors=False)]
        )
        if any(p.is_error for p in problems):
            raise PlanError(problems)
    except PlanError as exc:
        _report_problems(exc.problems, json_output, None)
        raise typer.Exit(1) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:  # load_plan maps these; a guard
        shown = str(plan or "plans/")
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
                    "problems": [w.to_dict() for w in problems],
                },
                indent=2,
            )
        )
        return
    _report_problems(problems, False, summary)


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


def schema() -> None:
    """Print the plan file's JSON Schema (for editors)."""
    import json

    from orchestrator.config import plan_json_schema

    typer.echo(json.dumps(plan_json_schema(), indent=2))


def init(
    directory: Path = typer.Argument(Path("."), help="Project directory (default: here)."),
) -> None:
    """Scaffold plans/example.yaml (sandbox), state/, secrets/ and a .gitignore."""
    from orchestrator.config import init_project

    try:
        results = init_project(directory)
    except OSError as exc:
        Failure((f"{directory}: cannot create the project: {exc.strerror or exc}",)).exit()
    for path, outcome in results:
        suffix = "/" if path.is_dir() else ""
        typer.echo(f"{outcome:>8}  {path}{suffix}")
    enter = "" if directory == Path(".") else f"cd {directory} && "
    typer.echo(f"Next: {enter}orchestrator validate, then orchestrator plan.")


def write_paths(
    ctx: typer.Context,
    plan: Path | None = typer.Argument(
        None, help="Plan file (default: --plan, or the only plans/*.yaml)."
    ),
    systemd: bool = typer.Option(
        False, "--systemd", help="Print them as one systemd ReadWritePaths= line."
    ),
) -> None:
    """Print the directories the plan's commands write: state and every file or dotenv sink
    (for a sandboxed service's ReadWritePaths=). Never contacts the exchange."""
    from orchestrator.cli.errors import user_errors
    from orchestrator.config import find_plan, load_plan
    from orchestrator.sinks.paths import written_dirs

    with user_errors():
        root = Path.cwd()
        loaded = load_plan(find_plan(global_options(ctx).plan_file(plan), root))
        sinks = [k.sink for k in loaded.desired.keys()]
        dirs = [root.resolve() / "state", *written_dirs(sinks, root.resolve())]
    if systemd:
        typer.echo("ReadWritePaths=" + " ".join(str(d) for d in dirs))
        return
    for directory in dirs:
        typer.echo(str(directory))
