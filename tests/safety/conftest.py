"""The safety cases run on both stores: each test that takes `project` runs on the local
files and, as a slow case, on a PostgreSQL schema of its own. A test that works on the
store's files themselves says so with `@pytest.mark.local_files` and runs on those only."""

from __future__ import annotations

import pytest

from tests import pg_kit

POSTGRES = pytest.param("postgres", marks=(pytest.mark.postgres, pytest.mark.slow))


def pytest_generate_tests(metafunc) -> None:
    if "project" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("local_files"):
        return
    metafunc.parametrize("project", ["local", POSTGRES], indirect=True)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "local_files: works on the local store's files")


@pytest.fixture
def project(project, request):
    """The suite's project; on PostgreSQL, its plan names a schema made for the test."""
    if getattr(request, "param", "local") != "postgres":
        yield project
        return
    request.getfixturevalue("pg_dsn")
    schema = pg_kit.new_schema_name()
    plan = project / "plans" / "example.yaml"
    plan.write_text(pg_kit.with_backend(plan.read_text(), schema))
    yield project
    assert not list((project / "state").glob("*.state.json")), "ran on the local files"
    pg_kit.drop_schema(schema)
