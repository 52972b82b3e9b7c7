"""The ledger's writes: off the event loop, durable when awaited, and the fsyncs of concurrent
actions shared."""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import UTC, datetime

import pytest

from orchestrator.domain.permissions import Permission
from orchestrator.engine.changeset import UpdatePermissions
from orchestrator.engine.ledger import Ledger
from orchestrator.store import LocalFileBackend, new_state, next_serial
from orchestrator.store.audit import verify
from orchestrator.store.groupcommit import GroupCommitter
from orchestrator.store.state import KeyRecord

NOW = datetime(2024, 5, 1, tzinfo=UTC)


class FsyncCounter:
    """Counts os.fsync calls and the threads they are made on."""

    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        self.threads: set[str] = set()
        real = os.fsync

        def counted(fd):
            self.calls += 1
            self.threads.add(threading.current_thread().name)
            return real(fd)

        monkeypatch.setattr(os, "fsync", counted)


def action(n: int) -> UpdatePermissions:
    return UpdatePermissions(
        subaccount="quant",
        label=f"Bot{n}",
        email="quant@example.com",
        api_key=f"k{n}".ljust(64, "x"),
        api_name=f"Bot{n}-g1",
        permissions=frozenset({Permission.SPOT}),
        previous_permissions=frozenset({Permission.SPOT}),
        key_type="ed25519",
        sink="file:secrets/",
        reason="test",
    )


def record(n: int) -> KeyRecord:
    return KeyRecord(
        subaccount="quant",
        email="quant@example.com",
        label=f"Bot{n}",
        api_key=f"k{n}".ljust(64, "x"),
        api_name=f"Bot{n}-g1",
        generation=1,
        key_type="ed25519",
        created_at=NOW,
        permissions=["read"],
        ips=[],
        sink="file:secrets/",
    )


@pytest.fixture
def backend(tmp_path) -> LocalFileBackend:
    return LocalFileBackend(tmp_path)


def ledger(backend: LocalFileBackend, window_s: float = 0.05) -> Ledger:
    state = backend.save_state(next_serial(new_state("main")))
    journal = backend.journal("main")
    journal.intent("warm-up", {"op": "test"})  # the files exist: no directory fsync
    journal.outcome("warm-up")
    audit = backend.audit("apply")
    audit.append("warm-up")
    return Ledger(
        backend=backend,
        state=state,
        journal=journal,
        audit=audit,
        clock=lambda: NOW,
        committer=GroupCommitter(window_s=window_s),
    )


def test_concurrent_intents_share_one_fsync(backend, monkeypatch):
    books = ledger(backend)
    fsyncs = FsyncCounter(monkeypatch)

    async def run():
        return await asyncio.gather(
            *(books.intent("update_permissions", action(n)) for n in range(40))
        )

    ops = asyncio.run(run())
    assert fsyncs.calls == 1 and fsyncs.threads == {"group-commit"}
    assert {e.op_id for e in backend.journal("main").pending()} == set(ops)
    books.committer.close()


def test_an_awaited_intent_is_durable_before_it_returns(backend):
    books = ledger(backend, window_s=0.0)

    async def run():
        op = await books.intent("update_permissions", action(1))
        return op, [e.op_id for e in backend.journal("main").pending()]

    op, pending = asyncio.run(run())
    assert pending == [op]
    books.committer.close()


def test_concurrent_commits_and_audit_lines_share_fsyncs(backend, monkeypatch):
    books = ledger(backend)
    fsyncs = FsyncCounter(monkeypatch)

    async def one(n: int) -> None:
        state = books.state
        await books.commit(
            state.model_copy(update={"keys": {**state.keys, f"quant/Bot{n}": record(n)}})
        )
        await books.audit("update_permissions", action(n), api_key=record(n).api_key)

    async def run():
        await asyncio.gather(*(one(n) for n in range(30)))

    asyncio.run(run())
    assert fsyncs.calls == 3  # the new state log, its directory, the audit log
    loaded = backend.load_state("main")
    assert loaded.serial == 31 and len(loaded.keys) == 30
    assert verify(backend.audit_path).ok
    assert len(backend.audit_path.read_bytes().splitlines()) == 31
    books.committer.close()


def test_close_writes_the_state_file_with_the_next_serial_and_removes_the_log(backend):
    books = ledger(backend, window_s=0.0)

    async def run():
        await books.commit(books.state.model_copy(update={"keys": {"quant/Bot1": record(1)}}))
        await books.audit("update_permissions", action(1))
        assert backend.state_log_path("main").exists()
        await books.close(save=True)

    asyncio.run(run())
    assert not backend.state_log_path("main").exists()
    on_disk = backend.load_state("main")
    assert on_disk.serial == 3 and list(on_disk.keys) == ["quant/Bot1"]
    head = on_disk.audit_head
    assert head is not None and head.seq == 2  # it anchors the run's last audit line


def test_a_failed_write_reaches_every_waiting_caller(backend):
    books = ledger(backend, window_s=0.05)

    class Broken:
        def write_group(self, items):
            raise OSError("disk full")

    async def run():
        futures = [books.committer.submit(Broken(), n) for n in range(3)]
        return await asyncio.gather(
            *(asyncio.wrap_future(f) for f in futures), return_exceptions=True
        )

    results = asyncio.run(run())
    assert all(isinstance(r, OSError) for r in results)
    books.committer.close()
