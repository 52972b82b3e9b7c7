"""Key material during a run: the sinks, reached from a worker thread.

A sink writes files with fsync or calls Vault over a blocking client. Run on the event loop,
each call would stall every concurrent action and the pacing of the exchange calls, so the
executor reaches sinks only through `SinkIO`, which runs each call in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from orchestrator.sinks import KeyMaterial, Sink

SinkOpener = Callable[[str], Sink]


class SinkIO:
    def __init__(self, open_sink: SinkOpener) -> None:
        self.open_sink = open_sink

    async def check(self, spec: str, address: str) -> None:
        await asyncio.to_thread(self.open_sink(spec).check, address)

    async def write_pending(self, spec: str, material: KeyMaterial) -> None:
        await asyncio.to_thread(self.open_sink(spec).write_pending, material)

    async def read_pending(self, spec: str, address: str) -> KeyMaterial | None:
        return await asyncio.to_thread(self.open_sink(spec).read_pending, address)

    async def discard_pending(self, spec: str, address: str) -> None:
        await asyncio.to_thread(self.open_sink(spec).discard_pending, address)

    async def promote(self, spec: str, address: str) -> None:
        await asyncio.to_thread(self.open_sink(spec).promote, address)
