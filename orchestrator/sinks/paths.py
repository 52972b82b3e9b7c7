"""Where `file:` and `dotenv:` sinks may write: never into git, through a symlink, or outside.

A secret that git tracks, or that git would pick up with `git add .`, is one push away from
being public; a symlink can redirect a write anywhere; `..` can leave the project.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
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
    for probe in _probes(os.fspath(path), os.path.abspath(project_dir)):
        if os.path.islink(probe):
            raise UnsafeSinkPath(
                f"refusing to write {path}: {probe} is a symlink; secrets are written only"
                " to real files and directories"
            )


def _probes(path: str, project: str) -> list[str]:
    """The paths `check_no_symlink` looks at: each one from the project down to `path`, or,
    outside the project, the file and its directory. Plain strings: a plan checks thousands."""
    inside = project.rstrip(os.sep) + os.sep
    if path != project and not path.startswith(inside):
        return [os.path.dirname(path), path]
    probes, probe = [], project
    for part in path[len(inside) :].split(os.sep) if path != project else ():
        probe = os.path.join(probe, part)
        probes.append(probe)
    return probes


class GitCheck:
    """Whether git could commit a path, asked once per path: in a git work tree, a path for
    secrets must be ignored by git and not tracked. `ask` puts the question about many paths
    to git at once (one `ls-files` and one `check-ignore` per work tree), so checking a whole
    plan costs a few git processes, not two per file."""

    def __init__(self) -> None:
        self._refusals: dict[Path, str | None] = {}

    def refuse(self, path: Path) -> None:
        """UnsafeSinkPath when git could commit `path`."""
        if path not in self._refusals:
            self.ask([path])
        refusal = self._refusals[path]
        if refusal is not None:
            raise UnsafeSinkPath(refusal)

    def ask(self, paths: Iterable[Path]) -> None:
        by_tree: dict[Path, list[Path]] = {}
        roots: dict[Path, Path | None] = {}  # the work tree of each directory, found once
        for path in dict.fromkeys(paths):
            if path in self._refusals:
                continue
            if path.parent not in roots:
                roots[path.parent] = _git_root(_existing_ancestor(path))
            root = roots[path.parent]
            if root is None:
                self._refusals[path] = None
            else:
                by_tree.setdefault(root, []).append(path)
        for root, found in by_tree.items():
            for start in range(0, len(found), _BATCH):
                batch = found[start : start + _BATCH]
                answers = _git_refusals(root, batch)
                if answers is None:  # one path git cannot judge fails the whole question
                    answers = {}
                    for path in batch:
                        answers |= _git_refusals(root, [path]) or {path: _unanswered(path)}
                self._refusals |= answers


#: paths per git call: well inside any command line limit.
_BATCH = 256


def _git_refusals(root: Path, paths: list[Path]) -> dict[Path, str | None] | None:
    """The refusal for each of `paths` (all in the work tree at `root`), None for a path git
    ignores and does not track; None when git could not answer."""
    names = {_relative(path, root): path for path in paths}
    listed, tracked = _git(["--literal-pathspecs", "ls-files", "-z", "--", *names], root)
    ignoring, ignored = _git(["check-ignore", "-z", "--stdin"], root, "\0".join(names) + "\0")
    if listed != 0 or ignoring not in (0, 1):
        return None
    found: dict[Path, str | None] = {}
    for name, path in names.items():
        if name in tracked:
            found[path] = (
                f"refusing to write secrets to {path}: git tracks it. Remove it from git"
                " (`git rm --cached`), rotate the key it held, and add it to .gitignore"
            )
        elif name not in ignored:
            found[path] = (
                f"refusing to write secrets to {path}: it is in a git work tree and git does"
                " not ignore it. Add it (or its directory) to .gitignore first"
            )
        else:
            found[path] = None
    return found


def _unanswered(path: Path) -> str:
    return (
        f"refusing to write secrets to {path}: could not ask git whether it is ignored;"
        f" check `git check-ignore -v {path}`"
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def check_not_in_git(path: Path) -> None:
    """Refuse a path inside a git work tree unless git ignores it and does not track it."""
    GitCheck().refuse(path)


def check_safe(path: Path, project_dir: Path, git: GitCheck | None = None) -> None:
    """Refuse symlinks (always re-checked: cheap) and paths git could commit. `git` keeps
    git's answers for the run, so each path is asked about once, not on every write."""
    check_no_symlink(path, project_dir)
    (git or GitCheck()).refuse(path)


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


def _git(args: list[str], cwd: Path, stdin: str = "") -> tuple[int, set[str]]:
    """Run git with a minimal environment so no inherited GIT_* variable steers it; (exit
    status, the NUL-separated names it printed)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            input=stdin.encode(),
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return -1, set()
    names = {os.fsdecode(name) for name in done.stdout.split(b"\0") if name}
    return done.returncode, names


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
