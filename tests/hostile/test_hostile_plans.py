"""Hostile plan and state files: never a traceback, always exit 1 with a message, and never a
call to the exchange."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.config import init_project
from orchestrator.wiring import Wiring

runner = CliRunner()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.text(alphabet="\u202e\u0000\ufeff\U0001f600abc-:[]{}#&*!|>'\"%@`", max_size=20),
    st.just("x" * 100_000),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.text(max_size=12),
                st.sampled_from(
                    [
                        "version",
                        "exchange",
                        "defaults",
                        "subaccounts",
                        "keys",
                        "label",
                        "ips",
                        "name",
                        "email",
                        "virtual",
                        "permissions",
                        "profile",
                        "secrets",
                        "rotate_after",
                    ]
                ),
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=25,
)
plan_like = st.fixed_dictionaries(
    {"version": st.one_of(st.just(1), scalars), "subaccounts": structures},
    optional={"exchange": structures, "defaults": structures},
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    init_project(root)
    return root


@pytest.fixture(autouse=True)
def _in_workdir(monkeypatch, request):
    if "workdir" in request.fixturenames:
        monkeypatch.chdir(request.getfixturevalue("workdir"))


def refuse_exchange(*args, **kwargs):
    raise AssertionError("a bad plan reached the exchange")


#: Every command here runs wired to this: reaching the exchange fails the test.
NO_EXCHANGE = Wiring(open_exchange=refuse_exchange)


def is_valid(plan: Path) -> bool:
    from orchestrator.config import PlanError, load_plan

    try:
        load_plan(plan)
    except PlanError:
        return False
    return True


def refused(workdir: Path, text: str | bytes, command: str = "plan") -> None:
    """A bad plan is refused cleanly; the rare valid one generated at random is skipped."""
    plan = workdir / "plans" / "example.yaml"
    plan.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    if is_valid(plan):
        return
    result = runner.invoke(
        app, ["--plan", str(plan), command], catch_exceptions=False, obj=NO_EXCHANGE
    )
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert "example.yaml" in result.output


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))


def check_text(workdir: Path, text: str, chaos) -> None:
    chaos.add("bad_inputs_tried")
    refused(workdir, text)
    chaos.add("bad_inputs_refused_cleanly")


@fuzz(40)
@given(text=st.text(max_size=400))
def test_random_text_is_refused(workdir: Path, text: str, chaos):
    check_text(workdir, text, chaos)


@fuzz(40)
@given(data=plan_like)
def test_random_structures_are_refused(workdir: Path, data, chaos):
    check_text(workdir, yaml.safe_dump(data, allow_unicode=True), chaos)


@pytest.mark.slow
@fuzz(500)
@given(text=st.text(max_size=2000))
def test_random_text_is_refused_many(workdir: Path, text: str, chaos):
    check_text(workdir, text, chaos)


@pytest.mark.slow
@fuzz(500)
@given(data=plan_like)
def test_random_structures_are_refused_many(workdir: Path, data, chaos):
    check_text(workdir, yaml.safe_dump(data, allow_unicode=True), chaos)


@pytest.mark.parametrize(
    "text",
    [
        b"\xff\xfe\x00garbage",
        "a: " + "[" * 5000 + "]" * 5000,
        "version: 1\nsubaccounts:\n" + "  - name: s\n    email: s@example.com\n" * 3000,
        "version: 1\nsubaccounts: &a [*a]\n",
        "version: 1\n" + "x" * 2_000_000,
        "!!python/object/apply:os.system ['true']\n",
        "version: 1\nsubaccounts:\n  - name: =\n",
        "=\n",
    ],
    ids=[
        "binary",
        "deep-nesting",
        "huge-list",
        "recursive-alias",
        "huge-scalar",
        "yaml-tag",
        "value-tag",
        "value-tag-alone",
    ],
)
def test_pathological_plans_are_refused(workdir: Path, text, chaos):
    chaos.add("bad_inputs_tried")
    refused(workdir, text)
    refused(workdir, text, "validate")
    chaos.add("bad_inputs_refused_cleanly")


@pytest.mark.parametrize(
    "state",
    [
        "",
        "{",
        "[]",
        '{"version": 1, "lineage": "x", "serial": "many", "plan": "example"}',
        '{"version": 1, "lineage": "x", "serial": 3, "plan": "another-plan"}',
        json.dumps(
            {
                "version": 1,
                "lineage": "x",
                "serial": 1,
                "plan": "example",
                "keys": {"a/b": {"api_key": 5}},
            }
        ),
    ],
    ids=["empty", "truncated", "list", "wrong-type", "other-plan", "bad-record"],
)
def test_hostile_state_files_are_refused(tmp_path: Path, monkeypatch, state: str, chaos):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    init_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "state" / "example.state.json").write_text(state)
    chaos.add("bad_inputs_tried")
    for command in (["plan"], ["apply", "--auto-approve"], ["state", "list"]):
        result = runner.invoke(app, command, catch_exceptions=False, obj=NO_EXCHANGE)
        assert "Traceback" not in result.output
        assert result.exit_code == 1, (command, result.output)
        assert "example.state.json" in result.output
    chaos.add("bad_inputs_refused_cleanly")
