"""The packages of orchestrator import only downward, and no two packages import each other.

Every import is read from the source with `ast`, including the ones inside functions and under
`if TYPE_CHECKING:`, so a lazy import cannot hide an upward dependency. A module may import
its own package and any package in a lower layer; an import into the same layer or a higher
one names the file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orchestrator

ROOT = Path(orchestrator.__file__).parent
PACKAGE = "orchestrator"

#: Lowest first. `orchestrator/__init__.py` itself (the root) sits at the bottom: it imports
#: nothing, so anything may read its version.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"(root)", "domain"}),  # permissions, desired and live models, apiName naming
    frozenset({"exchange", "store", "notify"}),  # the Binance client; state, journal, lock,
    # audit log; notifications
    frozenset({"sinks", "config"}),  # sinks write material with store.atomic; config loads
    # plans into domain models
    # The engine is handed an exchange and never opens one, so it must not see the emulator
    # (which speaks the exchange's endpoints): the two share a layer, and only the layers
    # above wire them together.
    frozenset({"engine", "emulator"}),
    frozenset({"wiring", "logs"}),  # which exchange and clock the engine gets; log setup
    frozenset({"cli", "demo"}),  # entry points
    frozenset({"__main__"}),
)
RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}


@dataclass(frozen=True)
class Import:
    source: str  # the importing unit (second part of the dotted name, or "(root)")
    target: str  # the imported unit
    module: str  # the dotted name as written (resolved if relative)
    where: str  # file:line, relative to the repository


def unit_of(module: str) -> str:
    """The layered unit a dotted orchestrator module belongs to: its top-level package or
    module under orchestrator, or "(root)" for orchestrator itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list:
    """The orchestrator modules one import statement names, relative ones resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    if base == PACKAGE:  # `from orchestrator import cli` names the submodule
        return [f"{PACKAGE}.{alias.name}" for alias in node.names]
    return [base]


def imports_in(path: Path) -> Iterator[Import]:
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # every scope: module level, functions, TYPE_CHECKING blocks; in the file's order
    statements = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    for node in sorted(statements, key=lambda n: n.lineno):
        for name in imported_modules(node, module, path.name == "__init__.py"):
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = unit_of(name)
                if target not in RANK and name.count(".") == 1:
                    target = "(root)"  # `from orchestrator import __version__`
                where = f"{path.relative_to(ROOT.parent)}:{node.lineno}"
                yield Import(unit_of(module), target, name, where)


def all_imports() -> list[Import]:
    return [found for path in sorted(ROOT.rglob("*.py")) for found in imports_in(path)]


def test_every_package_has_a_layer():
    units = {unit_of(module_name(path)) for path in ROOT.rglob("*.py")}
    assert units <= set(RANK), f"give these a layer in LAYERS: {sorted(units - set(RANK))}"


def test_imports_point_only_down():
    wrong = [
        f"{found.where}: {found.source} (layer {RANK[found.source]}) imports {found.module} "
        f"({found.target}, layer {RANK[found.target]})"
        for found in all_imports()
        if found.source != found.target and RANK[found.target] >= RANK[found.source]
    ]
    assert not wrong, "imports into the same or a higher layer:\n" + "\n".join(wrong)


def test_no_circular_package_imports():
    edges: dict[str, dict[str, str]] = {}
    for found in all_imports():
        if found.source != found.target:
            edges.setdefault(found.source, {}).setdefault(found.target, found.where)
    cycles = [_describe(cycle, edges) for cycle in _cycles(edges)]
    assert not cycles, "circular package imports:\n" + "\n".join(cycles)


def test_the_walk_sees_lazy_and_type_checking_imports(tmp_path, monkeypatch):
    """The guard is only as good as its walk: imports in functions and under TYPE_CHECKING
    count, and relative imports are resolved."""
    engine = tmp_path / "orchestrator" / "engine"
    engine.mkdir(parents=True)
    (engine / "probe.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from orchestrator.cli import app\n"
        "def later():\n"
        "    import orchestrator.wiring\n"
        "from ..emulator import core\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path / "orchestrator")
    found = [(i.target, i.module, i.where) for i in imports_in(engine / "probe.py")]
    assert found == [
        ("cli", "orchestrator.cli", "orchestrator/engine/probe.py:3"),
        ("wiring", "orchestrator.wiring", "orchestrator/engine/probe.py:5"),
        ("emulator", "orchestrator.emulator", "orchestrator/engine/probe.py:6"),
    ]


def test_a_cycle_is_reported_with_the_lines_that_close_it():
    edges = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:2"}, "c": {"a": "c.py:3"}, "d": {}}
    assert [_describe(cycle, edges) for cycle in _cycles(edges)] == [
        "a (a.py:1) -> b (b.py:2) -> c (c.py:3) -> a"
    ]


def _cycles(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    """Each elementary cycle once, found by depth-first search from every unit."""
    found: set[tuple[str, ...]] = set()

    def visit(path: list[str]) -> None:
        for nxt in edges.get(path[-1], {}):
            if nxt == path[0]:
                start = path.index(min(path))
                found.add(tuple(path[start:] + path[:start]))
            elif nxt not in path:
                visit([*path, nxt])

    for unit in edges:
        visit([unit])
    return [list(cycle) for cycle in sorted(found)]


def _describe(cycle: list[str], edges: dict[str, dict[str, str]]) -> str:
    steps = zip(cycle, cycle[1:] + cycle[:1], strict=True)
    return " -> ".join(f"{a} ({edges[a][b]})" for a, b in steps) + f" -> {cycle[0]}"
