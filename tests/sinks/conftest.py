import os

import pytest


@pytest.fixture
def open_umask():
    old = os.umask(0)
    yield
    os.umask(old)
