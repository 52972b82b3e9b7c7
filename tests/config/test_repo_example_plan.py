"""The repository's plans/example.yaml is the plan `orchestrator init` writes, and it is valid."""

from pathlib import Path

from orchestrator.config import load_plan
from orchestrator.config.scaffold import EXAMPLE_PLAN

EXAMPLE = Path(__file__).resolve().parents[2] / "plans" / "example.yaml"


def test_repository_example_is_the_scaffolded_plan_and_valid():
    assert EXAMPLE.read_text() == EXAMPLE_PLAN
    assert load_plan(EXAMPLE).key_count == 3


def test_readme_plan_example_is_valid(tmp_path):
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    start = readme.index("```yaml\n") + len("```yaml\n")
    plan = tmp_path / "readme.yaml"
    plan.write_text(readme[start : readme.index("```", start)])
    assert load_plan(plan).key_count == 3
