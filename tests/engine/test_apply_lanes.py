"""A sub-account's new keys are made one after another (the exchange takes its creates one at
a time anyway); everything else in a phase runs concurrently."""

from __future__ import annotations

import asyncio

from orchestrator.engine.apply import Applier, _lanes
from orchestrator.engine.changeset import Changeset, CreateKey, DeleteKey, Rotate

READ: frozenset = frozenset()  # read-only: read is always on


def _create(sub: str, label: str) -> CreateKey:
    return CreateKey(
        subaccount=sub,
        label=label,
        email=f"{sub}@example.com",
        api_name=f"orc-{label}-g1",
        generation=1,
        permissions=READ,
        ips=(),
        key_type="ed25519",
        sink="file:secrets/",
    )


def _rotate(sub: str, label: str) -> Rotate:
    return Rotate(
        subaccount=sub,
        label=label,
        email=f"{sub}@example.com",
        api_key="K" * 64,
        replaced_name=f"orc-{label}-g1",
        api_name=f"orc-{label}-g2",
        generation=2,
        permissions=READ,
        ips=(),
        key_type="ed25519",
        sink="file:secrets/",
        grace_s=0,
    )


def _delete(sub: str, name: str) -> DeleteKey:
    return DeleteKey(
        subaccount=sub,
        label=None,
        email=f"{sub}@example.com",
        api_key=name * 8,
        api_name=name,
        permissions=READ,
    )


def test_key_makers_share_their_subaccount_lane_in_plan_order():
    a1, b1, a2, a3 = _create("a", "x"), _create("b", "x"), _create("a", "y"), _rotate("a", "z")
    d1, d2 = _delete("a", "old1"), _delete("a", "old2")
    assert _lanes([a1, b1, d1, a2, d2, a3]) == [[a1, a2, a3], [b1], [d1], [d2]]


class _Recorder(Applier):
    """An Applier whose actions only record when they start and end."""

    def __init__(self) -> None:  # no exchange, ledger or sinks: nothing here touches them
        self.events: list[tuple[str, str]] = []
        self.results = []

    async def _run(self, action) -> None:
        self.events.append(("start", action.address))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.events.append(("end", action.address))


async def test_a_subaccounts_creates_do_not_overlap_but_subaccounts_do():
    applier = _Recorder()
    changeset = Changeset(
        plan_name="p",
        actions=(_create("a", "x"), _create("a", "y"), _create("b", "x")),
        findings=(),
    )
    await applier.apply(changeset)
    events = applier.events
    assert events.index(("end", "a/x")) < events.index(("start", "a/y"))
    assert events.index(("start", "b/x")) < events.index(("end", "a/x"))
