"""The store the reliability scenarios run on: the local files unless a test's parameters
name `postgres` (indirectly, so that module-scoped scenarios are built once per backend)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def backend(request) -> str:
    return getattr(request, "param", "local")
