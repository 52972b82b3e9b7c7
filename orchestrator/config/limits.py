"""How large a plan file may be, checked before (bytes) and while (depth, value length) it is
read, and right after (sub-accounts, keys), so that a huge or hostile file is refused fast and
with little memory instead of being parsed for minutes.

The limits sit far above any real plan: Binance allows 30 keys per account, and a desk with
thousands of keys is better split into several plans (one project each) anyway.
"""

from __future__ import annotations

MAX_PLAN_BYTES = 4 * 1024 * 1024
MAX_SUBACCOUNTS = 2_000
MAX_KEYS = 10_000
#: mapping and list levels below the top: subaccounts[0].keys[0].ips[0] is four deep.
MAX_DEPTH = 12
#: characters in one value or field name; the longest real ones (an endpoint, a reason, a
#: vault path) are far shorter.
MAX_VALUE_CHARS = 1_024

SPLIT_HINT = (
    "split the plan into several files (e.g. one per group of sub-accounts, each with its own "
    "`project:`) and run each with `--plan FILE`"
)


def size_in_words(size: int) -> str:
    """A byte count as a person reads it: 38.0 MiB, 4.0 MiB, 812 bytes."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} bytes"
