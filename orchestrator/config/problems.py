"""What is wrong with a plan file, where, and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding about a plan file. `line` and `column` are 1-based; None when unknown."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    hint: str = ""
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def format(self) -> str:
        """`file:line:col: path: message Fix: hint`, the form editors and CI logs understand."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        parts = [where]
        if self.path:
            parts.append(self.path)
        if self.severity == "warning":
            parts.append("warning")
        text = ": ".join(parts) + ": " + self.message
        if self.hint:
            text += f" Fix: {self.hint}"
        return text

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
            "severity": self.severity,
        }


class PlanError(Exception):
    """A plan file that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(self.summary())

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    def summary(self) -> str:
        return "\n".join(p.format() for p in self.problems)


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Unique problems in file order (unknown positions first, as they concern the whole file)."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.file, p.line or 0, p.column or 0))
