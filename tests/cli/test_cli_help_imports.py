"""`orchestrator --help` prints from the command table alone: no engine, no heavy library."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY_MODULES = ("httpx", "pydantic", "cryptography", "yaml", "rich", "orchestrator.engine")
#: typer coerces parameters with pydantic, so the help of anything past the root loads it
COMMAND_HEAVY_MODULES = tuple(m for m in HEAVY_MODULES if m != "pydantic")

PROBE = """
import sys
from orchestrator.cli import main
sys.argv = ["orchestrator", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("\\n--modules--", " ".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    ("args", "heavy"),
    [
        (["--help"], HEAVY_MODULES),
        ([], HEAVY_MODULES),
        (["state", "--help"], COMMAND_HEAVY_MODULES),
        (["plan", "--help"], COMMAND_HEAVY_MODULES),
        (["apply", "--help"], COMMAND_HEAVY_MODULES),
    ],
)
def test_help_loads_no_heavy_module(args, heavy):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    shown, _, modules = done.stdout.partition("--modules--")
    assert "Usage:" in shown + done.stderr
    assert not [m for m in modules.split() if m.startswith(heavy)]
