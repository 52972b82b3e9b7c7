"""Group commit: the appends of many concurrent callers written by one worker thread, with one
fsync per file per group instead of one per append.

A caller submits an item for a target (the journal, the audit log, the state log) and gets
a future that completes once the item is durable. The worker takes the first waiting item,
gathers whatever else arrives within a short window (or up to a group's maximum size), and
hands each target its items in the order they were submitted: the target writes them all and
fsyncs once. A caller that needs one append durable before its next step awaits the future;
appends of one caller that depend on each other are awaited in turn.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

#: how long the worker waits for more items after the first one of a group
DEFAULT_WINDOW_S = 0.002
DEFAULT_MAX_GROUP = 1024


class GroupTarget(Protocol):
    def write_group(self, items: list[Any]) -> list[Any]:
        """Write `items` in order and make them durable together; one result per item."""
        ...


@dataclass(frozen=True)
class _Job:
    target: GroupTarget
    item: Any
    future: Future


class GroupCommitter:
    def __init__(
        self, *, window_s: float = DEFAULT_WINDOW_S, max_group: int = DEFAULT_MAX_GROUP
    ) -> None:
        self.window_s = window_s
        self.max_group = max_group
        self.groups = 0  # groups committed so far, for tests and benchmarks
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()
        self._closed = False

    def submit(self, target: GroupTarget, item: Any) -> Future:
        """Queue `item` for `target`; the future holds the target's result for it once it is
        durable, or the exception that writing it raised."""
        future: Future = Future()
        with self._mutex:
            if self._closed:
                raise RuntimeError("the group committer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()
            self._queue.put(_Job(target, item, future))
        return future

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker once every item submitted so far is written."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is None:
                return
            self._queue.put(None)
        if wait:
            thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group, stop = self._gather(first)
            self._commit(group)
            self.groups += 1
            if stop:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        group = [first]
        deadline = time.monotonic() + self.window_s
        while len(group) < self.max_group:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    job = self._queue.get(timeout=remaining)
                else:
                    job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return group, True
            group.append(job)
        return group, False

    def _commit(self, group: list[_Job]) -> None:
        by_target: dict[int, list[_Job]] = {}
        for job in group:
            job.future.set_running_or_notify_cancel()  # a cancelled caller's item is kept
            by_target.setdefault(id(job.target), []).append(job)
        for jobs in by_target.values():
            try:
                results = jobs[0].target.write_group([job.item for job in jobs])
            except BaseException as exc:  # noqa: BLE001 - each waiting caller gets it
                for job in jobs:
                    _settle(job.future, exception=exc)
                continue
            for job, result in zip(jobs, results, strict=True):
                _settle(job.future, result=result)


def _settle(future: Future, *, result: Any = None, exception: BaseException | None = None) -> None:
    if future.cancelled():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
