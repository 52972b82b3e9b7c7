"""The apiName the orchestrator gives its keys: plan label plus generation.

`apiName` is the only label Binance keeps, so it must carry what is needed to recognise our
keys without state: `orc-<label>-g<generation>`, e.g. `orc-QuantBot-BTC-g3`.
"""

from __future__ import annotations

import re

PREFIX = "orc-"
MAX_API_NAME = 64
MAX_GENERATION_DIGITS = 6
#: room a label may take so that prefix, marker and generation still fit in MAX_API_NAME.
MAX_LABEL = MAX_API_NAME - len(PREFIX) - len("-g") - MAX_GENERATION_DIGITS
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_API_NAME = re.compile(r"^orc-(?P<label>[A-Za-z0-9][A-Za-z0-9_-]*)-g(?P<generation>\d{1,6})$")


def api_name(label: str, generation: int) -> str:
    return f"{PREFIX}{label}-g{generation}"


def parse_api_name(name: str) -> tuple[str, int] | None:
    """(label, generation) of one of our keys, or None for a key we did not name."""
    match = _API_NAME.match(name)
    if match is None:
        return None
    return match["label"], int(match["generation"])
