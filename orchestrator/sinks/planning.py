"""Everything apply would refuse about a plan's sinks, found before anything is written.

Each key of a plan uses a sink (`SinkUse`). `refusals` opens the sinks the way apply does and
asks each the question apply asks before it writes (`Sink.check`): a path that leaves the
project, a symlink, a path git tracks or does not ignore, a Vault sink without its settings,
one dotenv file named for two keys. On top, two keys whose sinks would write one file (two
spellings of a path, a dotenv file inside a `file:` sink's folder) are refused. Nothing is
written; git is asked about all paths at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.sinks import open_sink
from orchestrator.sinks.base import Sink
from orchestrator.sinks.errors import SinkEnvironmentMissing, SinkError
from orchestrator.sinks.paths import GitCheck


@dataclass(frozen=True)
class SinkUse:
    """A key (`sub-account/label`) writing its material to the sink `spec`."""

    spec: str
    address: str


@dataclass(frozen=True)
class Refusal:
    """Why apply would refuse to write one key's material; `environment` when only the
    environment this runs in is missing something (the plan may be fine elsewhere)."""

    message: str
    environment: bool = False


def refusals(
    uses: Sequence[SinkUse],
    project_dir: Path,
    env: Mapping[str, str] = os.environ,
    git: GitCheck | None = None,
) -> dict[int, Refusal]:
    """What apply would refuse, by index into `uses`; empty when every key can be written."""
    git = git or GitCheck()
    sinks = _open(uses, project_dir, env, git)
    found: dict[int, Refusal] = {}
    planned: dict[int, tuple[Sink, list[Path]]] = {}
    for index, use in enumerate(uses):
        sink = sinks[use.spec]
        if isinstance(sink, Refusal):
            found[index] = sink
            continue
        try:
            planned[index] = (sink, sink.paths(use.address))
        except (SinkError, ValueError) as exc:
            found[index] = Refusal(str(exc))
    git.ask(path for _, paths in planned.values() for path in paths)
    for index, (sink, _) in planned.items():
        try:
            sink.check(uses[index].address)
        except SinkError as exc:
            found[index] = Refusal(str(exc))
    paths = {index: paths for index, (_, paths) in planned.items()}
    for index, message in _shared_files(uses, paths).items():
        found.setdefault(index, Refusal(message))
    return found


def _open(
    uses: Sequence[SinkUse], project_dir: Path, env: Mapping[str, str], git: GitCheck
) -> dict[str, Sink | Refusal]:
    """One sink per spec, as apply opens them; a spec that cannot be opened, its refusal."""
    sinks: dict[str, Sink | Refusal] = {}
    for spec in dict.fromkeys(use.spec for use in uses):
        try:
            sinks[spec] = open_sink(spec, project_dir, env, git)
        except SinkEnvironmentMissing as exc:
            sinks[spec] = Refusal(str(exc), environment=True)
        except SinkError as exc:
            sinks[spec] = Refusal(str(exc))
    return sinks


def _shared_files(uses: Sequence[SinkUse], planned: Mapping[int, list[Path]]) -> dict[int, str]:
    """Keys whose sinks would write a file another key's sink writes too."""
    writer: dict[Path, int] = {}
    found: dict[int, str] = {}
    for index, paths in planned.items():
        for path in paths:
            first = writer.setdefault(path, index)
            if first != index and uses[first].address != uses[index].address:
                found[index] = (
                    f"{uses[index].spec} would write {path}, which {uses[first].spec} also "
                    f"writes for {uses[first].address}; give each key a sink of its own"
                )
                break
    return found
