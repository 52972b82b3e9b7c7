"""Command-line conventions Terraform users expect, applied to every command.

- A usage error (unknown option, missing argument, bad value) exits 1: exit 2 means
  "changes present" under `plan --detailed-exitcode`, so it never stands for a typo.
- A flag is a flag (`--auto-approve`), and may also be written `--auto-approve=true` or
  `=false`, as Terraform's `-auto-approve=true` is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import typer
import typer.core

#: click's usage error, the base of typer's BadParameter (typer may bundle its own click).
UsageError: Any = typer.BadParameter.__mro__[1]
USAGE_EXIT_CODE = 1
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")


@contextlib.contextmanager
def usage_errors_exit_1() -> Iterator[None]:
    try:
        yield
    except UsageError as exc:
        exc.exit_code = USAGE_EXIT_CODE
        raise


class Group(typer.core.TyperGroup):
    """A command group whose usage errors exit 1, and whose commands take `--flag=true`."""

    def make_context(self, info_name, args, parent=None, **extra):
        with usage_errors_exit_1():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with usage_errors_exit_1():
            return super().invoke(ctx)

    def resolve_command(self, ctx, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not isinstance(command, typer.core.TyperGroup):
            rest = flags_with_values(command, rest)
        return name, command, rest


def flags_with_values(command, args: list[str]) -> list[str]:
    """`args` with `--flag=true` written `--flag`, and `--flag=false` written as the flag's
    `--no-` form or left out (the flag's default is off). A word other than true/false is
    a usage error naming the flag."""
    flags = {
        opt: param
        for param in command.params
        if getattr(param, "is_bool_flag", False)
        for opt in param.opts
    }
    rewritten: list[str] = []
    for position, arg in enumerate(args):
        if arg == "--":
            return rewritten + args[position:]
        name, equals, value = arg.partition("=")
        param = flags.get(name) if equals else None
        if param is None:
            rewritten.append(arg)
        elif value.lower() in TRUE_WORDS:
            rewritten.append(name)
        elif value.lower() in FALSE_WORDS and (param.secondary_opts or not param.default):
            rewritten.extend(param.secondary_opts[:1])
        else:
            raise typer.BadParameter(
                f"a flag takes true or false, not {value!r}: write {name}, {name}=true or "
                f"{name}=false.",
                param_hint=f"'{name}'",
            )
    return rewritten
