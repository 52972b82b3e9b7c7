"""A write through a symlink is refused at every level between the project and the file."""

from __future__ import annotations

import pytest

from orchestrator.sinks.errors import UnsafeSinkPath
from orchestrator.sinks.paths import check_no_symlink


def test_a_symlinked_directory_deep_inside_the_project_is_refused(tmp_path):
    project = tmp_path / "proj"
    (project / "secrets" / "real").mkdir(parents=True)
    (project / "secrets" / "quant").symlink_to(project / "secrets" / "real")
    with pytest.raises(UnsafeSinkPath, match="quant is a symlink"):
        check_no_symlink(project / "secrets" / "quant" / "bot.json", project)
    check_no_symlink(project / "secrets" / "real" / "bot.json", project)


def test_a_sibling_whose_name_starts_like_the_project_counts_as_outside(tmp_path):
    """`proj2` is not inside `proj`: only the file and its directory are looked at."""
    project = tmp_path / "proj"
    project.mkdir()
    (tmp_path / "real").mkdir()
    (tmp_path / "proj2").symlink_to(tmp_path / "real")
    check_no_symlink(tmp_path / "proj2" / "sub" / "bot.json", project)  # neither is a link
    with pytest.raises(UnsafeSinkPath, match="proj2 is a symlink"):
        check_no_symlink(tmp_path / "proj2" / "bot.json", project)
