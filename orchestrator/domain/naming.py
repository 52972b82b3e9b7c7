"""The apiName the orchestrator gives its keys: owning project, plan label and generation.

`apiName` is the only label Binance keeps, so it must carry what is needed to recognise our
keys without state, and whose they are: `orc-<project>.<label>-g<generation>`, e.g.
`orc-quant1.QuantBot-BTC-g3`. Keys made before projects had ids are named
`orc-<label>-g<generation>`; they parse with no owner.
"""

from __future__ import annotations

import re
from typing import NamedTuple

PREFIX = "orc-"
MAX_API_NAME = 64
MAX_GENERATION_DIGITS = 6
MAX_PROJECT = 12
PROJECT_PATTERN = re.compile(r"^[a-z0-9]{1,12}$")
#: room a label may take so that prefix, project, marker and generation fit in MAX_API_NAME.
MAX_LABEL = MAX_API_NAME - len(PREFIX) - MAX_PROJECT - 1 - len("-g") - MAX_GENERATION_DIGITS
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_API_NAME = re.compile(
    r"^orc-(?:(?P<owner>[a-z0-9]{1,12})\.)?(?P<label>[A-Za-z0-9][A-Za-z0-9_-]*)"
    r"-g(?P<generation>\d{1,6})$"
)


class KeyName(NamedTuple):
    label: str
    generation: int
    owner: str | None  # None: named before projects had ids


def api_name(label: str, generation: int, owner: str | None = None) -> str:
    project = f"{owner}." if owner else ""
    return f"{PREFIX}{project}{label}-g{generation}"


def parse_key_name(name: str) -> KeyName | None:
    """Label, generation and owning project of one of our keys; None for a key we did not
    name."""
    match = _API_NAME.fullmatch(name)
    if match is None:
        return None
    return KeyName(match["label"], int(match["generation"]), match["owner"])


def parse_api_name(name: str) -> tuple[str, int] | None:
    """(label, generation) of one of our keys, or None for a key we did not name."""
    parsed = parse_key_name(name)
    return (parsed.label, parsed.generation) if parsed else None


def project_id_from(stem: str) -> str:
    """The project id of a plan that does not set one: its file name, reduced to what an id
    may hold."""
    reduced = re.sub(r"[^a-z0-9]", "", stem.lower())[:MAX_PROJECT]
    return reduced or "default"
