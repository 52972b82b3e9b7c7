"""Every malformed or unsafe plan in corpus/ fails `validate` at the line its header names.

Each file starts with `# expect: line N: FRAGMENT`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

CORPUS = Path(__file__).parent / "corpus"
_EXPECT = re.compile(r"^# expect: line (?P<line>\d+): (?P<fragment>.+)$")


def _cases() -> list[tuple[str, int, str]]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        header = path.read_text(encoding="utf-8").splitlines()[0]
        match = _EXPECT.match(header)
        assert match, f"{path.name} lacks an `# expect: line N: fragment` header"
        cases.append((path.name, int(match["line"]), match["fragment"]))
    return cases


CASES = _cases()


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize(("name", "line", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_validate_rejects_bad_plan(
    name: str, line: int, fragment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CORPUS)
    result = CliRunner().invoke(app, ["validate", name])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    located = [row for row in result.output.splitlines() if row.startswith(f"{name}:{line}:")]
    assert any(fragment in row for row in located), result.output
    assert any("Fix:" in row for row in located), result.output
