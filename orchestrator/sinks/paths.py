"""Where `file:` and `dotenv:` sinks may write: never into git, through a symlink, or outside.

A secret that git tracks, or that git would pick up with `git add .`, is one push away from
being public; a symlink can redirect a write anywhere; `..` can leave the project.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from orchestrator.sinks.errors import UnsafeSinkPath


def resolve_sink_path(raw: str, project_dir: Path) -> Path:
    """The absolute, normalised path a sink spec names, refusing a relative escape."""
    if not raw:
        raise UnsafeSinkPath("the sink path is empty")
    project = Path(os.path.abspath(project_dir))
    given = Path(os.path.expanduser(raw))
    if given.is_absolute():
        return Path(os.path.normpath(given))
    path = Path(os.path.normpath(project / given))
    if not path.is_relative_to(project):
        raise UnsafeSinkPath(
            f"{raw!r} leaves the project directory {project}; give an absolute path if you"
            " really want secrets outside it"
        )
    return path


def check_no_symlink(path: Path, project_dir: Path) -> None:
    """Refuse a write through a symlink: the file, or any directory between project and file."""
    project = Path(os.path.abspath(project_dir))
    if path.is_relative_to(project):
        parts = path.relative_to(project).parts
        probes = [project.joinpath(*parts[: i + 1]) for i in range(len(parts))]
    else:
        probes = [path.parent, path]
    for probe in probes:
        if probe.is_symlink():
            raise UnsafeSinkPath(
                f"refusing to write {path}: {probe} is a symlink; secrets are written only"
                " to real files and directories"
            )


def check_not_in_git(path: Path) -> None:
    """Refuse a path inside a git work tree unless git ignores it and does not track it."""
    anchor = _existing_ancestor(path)
    if _git_root(anchor) is None:
        return
    if _git(["ls-files", "--error-unmatch", "--", str(path)], anchor) == 0:
        raise UnsafeSinkPath(
            f"refusing to write secrets to {path}: git tracks it. Remove it from git"
            " (`git rm --cached`), rotate the key it held, and add it to .gitignore"
        )
    status = _git(["check-ignore", "-q", "--", str(path)], anchor)
    if status == 1:
        raise UnsafeSinkPath(
            f"refusing to write secrets to {path}: it is in a git work tree and git does not"
            " ignore it. Add it (or its directory) to .gitignore first"
        )
    if status != 0:
        raise UnsafeSinkPath(
            f"refusing to write secrets to {path}: could not ask git whether it is ignored"
            f" (git exited {status}); check `git check-ignore -v {path}`"
        )


def check_safe(path: Path, project_dir: Path, cleared: set[Path] | None = None) -> None:
    """Refuse symlinks (always re-checked: cheap) and paths git could commit. `cleared`
    remembers paths git has already cleared for this sink, so a run asks git about each path
    once instead of on every write (two git processes a question)."""
    check_no_symlink(path, project_dir)
    if cleared is not None and path in cleared:
        return
    check_not_in_git(path)
    if cleared is not None:
        cleared.add(path)


def _existing_ancestor(path: Path) -> Path:
    probe = path.parent
    while not probe.is_dir() and probe != probe.parent:
        probe = probe.parent
    return probe


def _git_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def _git(args: list[str], cwd: Path) -> int:
    """Run git with a minimal environment so no inherited GIT_* variable steers it."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return -1
    return done.returncode


def written_dirs(specs: list[str], project_dir: Path) -> list[Path]:
    """The directories `file:` and `dotenv:` sinks write (a dotenv file's siblings hold its
    pending and held generations), absolute, each once. Vault sinks write no file."""
    found: list[Path] = []
    for spec in specs:
        kind, _, target = spec.partition(":")
        if kind not in ("file", "dotenv") or not target:
            continue
        path = resolve_sink_path(target, project_dir)
        directory = path if kind == "file" else path.parent
        if directory not in found:
            found.append(directory)
    return found
