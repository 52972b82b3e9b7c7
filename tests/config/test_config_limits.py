"""Plan size limits and values that used to slip through: each refused with a clear problem,
never a traceback, and a huge file refused before it is read."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import pytest

from orchestrator.config import PlanError, Problem, load_plan
from orchestrator.config.limits import (
    MAX_DEPTH,
    MAX_KEYS,
    MAX_PLAN_BYTES,
    MAX_SUBACCOUNTS,
    MAX_VALUE_CHARS,
)
from orchestrator.domain.naming import LABEL_PATTERN, PROJECT_PATTERN, parse_key_name
from orchestrator.sinks import split_address

HEAD = "version: 1\nexchange:\n  kind: binance\n"


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    return caught.value.problems


def one_key(label: str) -> str:
    return (
        "version: 1\nsubaccounts:\n  - name: quant\n    email: quant@example.com\n"
        f"    keys:\n      - label: {label}\n        ips: []\n"
    )


@pytest.mark.parametrize("label", ['"K1\\n"', '"K1\\r\\n"', '"K1\\n\\n"'])
def test_a_label_with_a_trailing_newline_is_refused(tmp_path, label):
    path = tmp_path / "plan.yaml"
    path.write_text(one_key(label))
    [problem] = problems_of(path)
    assert (problem.line, problem.column, problem.path) == (6, 16, "subaccounts[0].keys[0].label")
    assert "apiName would not keep" in problem.message


def test_every_pattern_check_refuses_a_trailing_newline(tmp_path):
    assert LABEL_PATTERN.fullmatch("K1\n") is None
    assert PROJECT_PATTERN.fullmatch("desk\n") is None
    assert parse_key_name("orc-desk.K1-g1\n") is None
    with pytest.raises(ValueError):
        split_address("quant/K1\n")
    for field, value in (
        ("project", '"desk\\n"'),
        ("email", '"quant@example.com\\n"'),
        ("secrets", '"vault:secret/orc\\n"'),
        ("name", '"quant\\n"'),
    ):
        text = one_key("K1")
        if field == "project":
            text = text.replace("version: 1\n", f"version: 1\nproject: {value}\n")
        elif field == "secrets":
            text = text.replace("ips: []", f"ips: []\n        secrets: {value}")
        elif field == "email":
            text = text.replace("email: quant@example.com", f"email: {value}")
        else:
            text = text.replace("name: quant", f"name: {value}")
        path = tmp_path / f"{field}.yaml"
        path.write_text(text)
        assert problems_of(path), field


@pytest.mark.parametrize("field", ["recv_window_ms", "rate_window_s"])
def test_a_hundred_thousand_digit_number_is_a_problem_not_a_traceback(tmp_path, field):
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD + f"  {field}: {'9' * 100_000}\n")
    [problem] = problems_of(path)
    assert (problem.line, problem.column) == (4, len(field) + 5)
    assert f"at most {MAX_VALUE_CHARS}" in problem.message
    assert problem.hint


def test_a_number_over_pythons_digit_limit_is_a_problem_whatever_the_value_limit(monkeypatch):
    """Python refuses to convert more than 4300 digits; that refusal is a problem at the
    value's position even if the length limit were raised above it."""
    from orchestrator.config import source

    monkeypatch.setattr(source, "MAX_VALUE_CHARS", 10**6)
    with pytest.raises(source.YamlSyntaxError) as caught:
        source.read_yaml("exchange:\n  recv_window_ms: " + "9" * 5000 + "\n")
    problem = caught.value.problem
    assert (problem.path, problem.position) == ("exchange.recv_window_ms", (2, 19))
    assert "cannot be read" in problem.message and "digits" in problem.message


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_rate_window_must_be_a_finite_number(tmp_path, value):
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD + f"  endpoint: http://127.0.0.1:8765\n  rate_window_s: {value}\n")
    assert any(p.path == "exchange.rate_window_s" for p in problems_of(path))


def test_a_38_mb_plan_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "plan.yaml"
    with path.open("wb") as file:  # a sparse file: its size is known without writing it
        file.write(HEAD.encode())
        file.truncate(38 * 1024 * 1024)
    tracemalloc.start()
    try:
        problems = problems_of(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, peak
    [problem] = problems
    assert "38.0 MiB" in problem.message and "at most 4.0 MiB" in problem.message
    assert "split the plan" in problem.hint


def test_the_byte_limit_holds_when_the_size_is_not_known_up_front(tmp_path):
    """A file that grows while being read, or reports no size, is still cut at the limit."""
    from orchestrator.config import loader

    with pytest.raises(PlanError) as caught:
        loader._refuse_size(MAX_PLAN_BYTES + 1, "plan.yaml")
    assert "at most 4.0 MiB" in str(caught.value)


def _subaccounts(count: int, keys_each: int) -> str:
    lines = ["version: 1", "subaccounts:"]
    for i in range(count):
        keys = ", ".join(f"{{label: K{j}, ips: []}}" for j in range(keys_each))
        lines.append(f"  - {{name: s{i}, email: s{i}@example.com, keys: [{keys}]}}")
    return "\n".join(lines) + "\n"


def test_too_many_subaccounts_is_one_clear_problem(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(_subaccounts(MAX_SUBACCOUNTS + 1, 0))
    [problem] = problems_of(path)
    assert (problem.line, problem.path) == (2, "subaccounts")
    assert f"{MAX_SUBACCOUNTS + 1} sub-accounts" in problem.message
    assert f"at most {MAX_SUBACCOUNTS}" in problem.message
    assert "split the plan" in problem.hint


def test_too_many_keys_is_one_clear_problem(tmp_path):
    per_sub = 25
    subs = MAX_KEYS // per_sub + 1
    path = tmp_path / "plan.yaml"
    path.write_text(_subaccounts(subs, per_sub))
    [problem] = problems_of(path)
    assert f"{subs * per_sub} keys" in problem.message
    assert f"at most {MAX_KEYS}" in problem.message


def test_a_plan_at_the_limits_loads(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(_subaccounts(400, 25))
    assert load_plan(path).key_count == 10_000


def test_nesting_deeper_than_a_plan_needs_is_refused(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("version: 1\nnotes: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n")
    [problem] = problems_of(path)
    assert f"more than {MAX_DEPTH} levels" in problem.message
    assert problem.line == 2


def test_a_long_field_name_is_refused_too(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("version: 1\n? " + "x" * 5000 + "\n: 1\n")
    [problem] = problems_of(path)
    assert re.search(r"5000 characters long", problem.message)
