"""What a sub-account key may do, in the project's own words (Binance's flags live in exchange)."""

from __future__ import annotations

from enum import Enum


class Permission(str, Enum):
    """A permission a sub-account key can be given through the API. Read is always on."""

    SPOT = "spot"
    MARGIN_LOAN = "margin_loan"
    FUTURES = "futures"
    UNIVERSAL_TRANSFER = "universal_transfer"
    OPTIONS = "options"


Permissions = frozenset[Permission]
