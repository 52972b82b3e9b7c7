"""Without a PostgreSQL server, `make test` skips the backend's tests with one line saying how
to run them; CI (CI=true, and `.ci/run`'s check before the tests) fails instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orchestrator

ROOT = Path(orchestrator.__file__).resolve().parents[1]
NOWHERE = "postgresql://postgres@127.0.0.1:1/test"
ONE_TEST = "tests/store/test_postgres_backend.py::test_a_save_that_lost_a_race_is_refused"


def pytest_run(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CI", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_TEST],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_a_server_the_tests_are_skipped_with_one_line_on_how_to_run_them():
    done = pytest_run(ORCHESTRATOR_TEST_PG_DSN=NOWHERE)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [
        line for line in done.stdout.splitlines() if "PostgreSQL backend tests skipped" in line
    ]
    assert len(lines) == 1, done.stdout
    assert "127.0.0.1:5432" in lines[0] and "ORCHESTRATOR_TEST_PG_DSN" in lines[0]


def test_in_ci_a_missing_server_fails_the_tests():
    done = pytest_run(ORCHESTRATOR_TEST_PG_DSN=NOWHERE, CI="true")
    assert done.returncode == 1, done.stdout
    assert "unreachable" in done.stdout and "CI=true requires it" in done.stdout


def test_the_ci_check_fails_without_a_server_and_says_what_it_needs():
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "check_postgres.py")],
        env={**os.environ, "ORCHESTRATOR_TEST_PG_DSN": NOWHERE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "PostgreSQL is unreachable" in done.stderr and "127.0.0.1:5432" in done.stderr
