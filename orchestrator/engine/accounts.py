"""Running one operation over several master accounts at once.

Each account has its own workspace (state, lock, journal, audit log) and its own client, so
its own rate-limit budgets and server-time offset: the accounts run concurrently, and one
account's failure is its own outcome, never the others' (their runs go on to the end).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from orchestrator.engine.workspace import Workspace

T = TypeVar("T")


@dataclass(frozen=True)
class AccountRun(Generic[T]):
    """What an operation gave for one account: its result, or the error that stopped it."""

    account: str | None
    result: T | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def each_account(
    workspaces: Sequence[Workspace], operation: Callable[[Workspace], Awaitable[T]]
) -> list[AccountRun[T]]:
    """`operation` for every workspace concurrently, in the workspaces' order. An exception
    (not an interrupt) in one account is recorded as that account's outcome."""

    async def one(ws: Workspace) -> AccountRun[T]:
        try:
            return AccountRun(ws.account, await operation(ws))
        except Exception as exc:  # noqa: BLE001 - reported per account by the caller
            return AccountRun(ws.account, error=exc)

    return list(await asyncio.gather(*(one(ws) for ws in workspaces)))
