"""Suite-wide test isolation."""

import pytest
import structlog


@pytest.fixture(autouse=True)
def _reset_structlog():
    """CLI commands configure structlog globally (level filter, stderr); undo it per test."""
    yield
    structlog.reset_defaults()
