"""Pydantic's validation errors, reworded as plan problems with a position and a fix."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from orchestrator.config.problems import Problem
from orchestrator.config.source import Source, join_path


def schema_problems(
    error: ValidationError, source: Source, file: str, root: type[BaseModel]
) -> list[Problem]:
    return [_problem(detail, source, file, root) for detail in error.errors()]


def loc_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path = join_path(path, part)
    return path


def _problem(detail: ErrorDetails, source: Source, file: str, root: type[BaseModel]) -> Problem:
    loc = tuple(detail["loc"])
    path = loc_path(loc)
    kind = detail["type"]
    # a wrong-typed block (a mapping or list) starts on the next line: point at its key
    on_key = kind == "extra_forbidden" or isinstance(detail.get("input"), dict | list)
    line, column = source.locate(path, key=on_key)
    explain = _EXPLAIN.get(kind, _pydantic_words)
    message, hint = explain(detail, loc, root)
    return Problem(file, line, column, path, message, hint)


def _custom(detail: ErrorDetails, loc: tuple, root: type[BaseModel]) -> tuple[str, str]:
    ctx = detail.get("ctx", {})
    return ctx.get("message", detail["msg"]), ctx.get("hint", "")


def _extra(detail: ErrorDetails, loc: tuple, root: type[BaseModel]) -> tuple[str, str]:
    name = str(loc[-1])
    fields = _fields_at(root, loc[:-1])
    close = difflib.get_close_matches(name, fields, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "remove it"
    if fields:
        hint += f" Fields allowed here: {', '.join(fields)}"
    if loc[:1] == ("backend",) and "dsn" in name.lower():
        hint = (
            "remove it: the DSN is read from the environment (ORCHESTRATOR_PG_DSN, or the"
            " variable `dsn_env` names), never from the plan file"
        )
    return f"unknown field {name!r}", hint


def _missing(detail: ErrorDetails, loc: tuple, root: type[BaseModel]) -> tuple[str, str]:
    name = str(loc[-1])
    example = "1" if name == "version" else "..."
    return f"missing required field {name!r}", f"add `{name}: {example}`"


def _literal(detail: ErrorDetails, loc: tuple, root: type[BaseModel]) -> tuple[str, str]:
    expected = detail.get("ctx", {}).get("expected", "")
    what = "exchange kind" if loc[-1] == "kind" else str(loc[-1]).replace("_", " ")
    return f"unknown {what} {detail['input']!r}", f"use {expected}"


def _wrong_type(
    expected: str, hint: str
) -> Callable[[ErrorDetails, tuple, type[BaseModel]], tuple[str, str]]:
    def explain(detail: ErrorDetails, loc: tuple, root: type[BaseModel]) -> tuple[str, str]:
        value = detail["input"]
        shape_hint = "write a single value here" if isinstance(value, dict | list) else hint
        return f"expected {expected}, got {_describe(value)}", shape_hint

    return explain


def _out_of_range(detail: ErrorDetails, loc: tuple, root: type[BaseModel]) -> tuple[str, str]:
    ctx = detail.get("ctx", {})
    bound = ", ".join(f"{_BOUNDS[k]} {v}" for k, v in ctx.items() if k in _BOUNDS)
    return f"{detail['input']!r} is out of range", f"use a value {bound}"


_BOUNDS = {"le": "at most", "lt": "below", "ge": "at least", "gt": "above"}


def _pydantic_words(detail: ErrorDetails, loc: tuple, root: type[BaseModel]) -> tuple[str, str]:
    return detail["msg"], "see `orchestrator schema` for what this field accepts"


_EXPLAIN = {
    "plan_value": _custom,
    "less_than_equal": _out_of_range,
    "less_than": _out_of_range,
    "greater_than_equal": _out_of_range,
    "greater_than": _out_of_range,
    "extra_forbidden": _extra,
    "missing": _missing,
    "literal_error": _literal,
    "string_type": _wrong_type("text", 'quote the value, e.g. "123" or "no"'),
    "list_type": _wrong_type("a list", "write [a, b] or one `- item` per line"),
    "model_type": _wrong_type("a mapping", "write `field: value` lines indented under it"),
    "model_attributes_type": _wrong_type(
        "a mapping", "write `field: value` lines indented under it"
    ),
    "dict_type": _wrong_type("a mapping", "write `field: value` lines indented under it"),
    "bool_type": _wrong_type("true or false", "write true or false"),
    "int_type": _wrong_type("a whole number", "write a number without quotes"),
    "int_parsing": _wrong_type("a whole number", "write a number without quotes"),
    "int_from_float": _wrong_type("a whole number", "write a number without a fraction"),
}


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _fields_at(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    """Field names of the model found at `loc` under `model` (for 'did you mean')."""
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field else None
    return list(model.model_fields) if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found:
            return found
    return None
