"""Suite-wide fixtures: test isolation, and the figures `make chaos` reports."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections import Counter
from pathlib import Path

import pytest
import structlog
from hypothesis import settings

from tests import pg_kit

# CI explores the same examples every run (a landing never fails on a new random draw);
# local runs keep exploring new ones, and keep the failures they find in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: `make chaos` sets this to bench/chaos.json; the reliability tests add their counts.
CHAOS_REPORT = "ORCHESTRATOR_CHAOS_REPORT"
_figures: Counter[str] = Counter()
#: the safety state machine's steps and invariant checks, the report's "safety" section.
_safety: Counter[str] = Counter()

FIGURES = (
    "crash_points_tried",
    "crash_points_converged",
    "grace_rotation_crash_points",
    "grace_rotation_crash_points_converged",
    "restore_crash_points",
    "restore_crash_points_converged",
    "sink_change_crash_points",
    "sink_change_crash_points_converged",
    "fault_applies_run",
    "fault_applies_converged",
    "bad_inputs_tried",
    "bad_inputs_refused_cleanly",
    "secret_leaks_found",
    "orphan_keys_found",
    "duplicate_keys_found",
    "corrupt_states_found",
    "invariant_bots_keys_work_checked",
    "invariant_bots_keys_work_failed",
    "invariant_dead_key_material_checked",
    "invariant_dead_key_material_failed",
    "invariant_label_generations_checked",
    "invariant_label_generations_failed",
)


@pytest.fixture(autouse=True)
def _reset_structlog():
    """CLI commands configure structlog globally (level filter, stderr); undo it per test."""
    yield
    structlog.reset_defaults()


class ChaosFigures:
    """Counts what the reliability tests tried and what they found, for bench/chaos.json."""

    def add(self, figure: str, n: int = 1) -> None:
        if figure not in FIGURES:
            raise KeyError(f"unknown chaos figure {figure!r}; one of {FIGURES}")
        _figures[figure] += n


class SafetyFigures:
    """Counts the safety state machine's steps and invariant checks, for bench/chaos.json."""

    def add(self, figure: str, n: int = 1) -> None:
        _safety[figure] += n


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A git-initialised project from `orchestrator init`, as the working directory, with no
    master credentials, moved clock or notification targets inherited from the environment."""
    import subprocess

    from orchestrator.config import init_project

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    init_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in (
        "BINANCE_API_KEY",
        "BINANCE_API_SECRET",
        "BINANCE_PRIVATE_KEY_FILE",
        "ORCHESTRATOR_NOW",
        "ORCHESTRATOR_NOTIFY",
        "ORCHESTRATOR_NOTIFY_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def chaos() -> ChaosFigures:
    return ChaosFigures()


@pytest.fixture
def safety_figures() -> SafetyFigures:
    return SafetyFigures()


def pytest_collection_modifyitems(config, items) -> None:
    """Tests that need the PostgreSQL server are skipped without one (one summary line says
    how to run them); under CI=true they run, and fail on the missing server."""
    wanted = [item for item in items if item.get_closest_marker("postgres")]
    if not wanted or pg_kit.required() or pg_kit.unreachable_reason() is None:
        return
    skip = pytest.mark.skip(reason="no PostgreSQL server (see the summary line)")
    for item in wanted:
        item.add_marker(skip)
    config._postgres_skipped = len(wanted)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    skipped = getattr(config, "_postgres_skipped", 0)
    if skipped:
        target = pg_kit.test_dsn().split("@")[-1]
        terminalreporter.write_line(
            f"{skipped} " + pg_kit.HOW_TO_RUN.format(target=target), yellow=True
        )


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The test server's DSN; fails (CI) or skips without a server."""
    reason = pg_kit.unreachable_reason()
    if reason is not None:
        message = f"PostgreSQL at {pg_kit.test_dsn()} is unreachable: {reason}"
        if pg_kit.required():
            pytest.fail(message + " (CI=true requires it)")
        pytest.skip(message)
    return pg_kit.test_dsn()


@pytest.fixture
def pg_schema(pg_dsn: str):
    """A schema name of this test's own, dropped afterwards (the tool creates it)."""
    name = pg_kit.new_schema_name()
    yield name
    pg_kit.drop_schema(name)


def pytest_sessionfinish(session, exitstatus) -> None:
    if pg_kit.unreachable_reason.cache_info().currsize and pg_kit.unreachable_reason() is None:
        pg_kit.drop_all()
    target = os.environ.get(CHAOS_REPORT)
    if not target:
        return
    report = {figure: _figures[figure] for figure in FIGURES}
    if _safety:
        report["safety"] = dict(sorted(_safety.items()))
    report["tests_failed"] = session.testsfailed
    report["tests_collected"] = session.testscollected
    report["python"] = sys.version.split()[0]
    report["machine"] = f"{platform.machine()} {platform.system()} {os.cpu_count()} cores"
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(json.dumps(report, indent=2) + "\n")
