"""Seeing bots switch to a new key before older generations go (`reload:` and `check:`).

After a rotation (or a create that replaces a key bots could not use) has put the new
generation's material in its sink and made it current, the key's reload step tells the bots
and its check step confirms they use it (engine/steps.py runs both). Only a success recorded
in state for the label's current key lets older generations be deleted, and their grace
starts then. A failure keeps every older generation live: it is recorded in state (so `plan`
shows the label as waiting, and `apply`/`rotate --due` run the steps again), written to the
audit log as a finding, and raised as a `SwitchFailed` event for whoever listens.

A crash after the steps succeeded but before state recorded it leaves no success in state,
so the next run runs them again before deleting anything: running them twice is harmless
(a bot re-reads its file), deleting a key a bot may still use is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from orchestrator.engine import crashpoints, transitions
from orchestrator.engine.changeset import CreateKey, DeleteKey, Reload, Rotate
from orchestrator.engine.deletes import Deleter
from orchestrator.engine.ledger import ActionFailed, Ledger, mask
from orchestrator.engine.material import SinkOpener
from orchestrator.engine.steps import StepsOutcome, StepTarget, run_steps
from orchestrator.sinks import bot_facing_location
from orchestrator.store.state import SwitchRecord

StepsChange = CreateKey | Rotate | Reload


@dataclass(frozen=True)
class SwitchFailed:
    """A key's reload or check failed: the event a notification hooks on. Secret-free."""

    address: str
    api_name: str
    generation: int
    reason: str
    kept: tuple[str, ...]  # apiNames of the older generations kept live meanwhile


SwitchListener = Callable[[SwitchFailed], None]


class StepsFailed(ActionFailed):
    """The reload or check step failed (recorded in state and the audit log already)."""

    def __init__(self, address: str, detail: str) -> None:
        super().__init__(f"{address}: {detail}")
        self.detail = detail


def has_steps(change: StepsChange) -> bool:
    return bool(change.reload or change.check)


class Switcher:
    def __init__(
        self,
        ledger: Ledger,
        open_sink: SinkOpener,
        deleter: Deleter,
        clock: Callable[[], datetime],
        cwd: Path,
        on_failed: SwitchListener | None = None,
    ) -> None:
        self.ledger = ledger
        self.open_sink = open_sink
        self.deleter = deleter
        self.clock = clock
        self.cwd = cwd
        self.on_failed = on_failed

    async def switch(
        self, change: StepsChange, api_key: str, generation: int, api_name: str
    ) -> StepsOutcome:
        """Run the steps for the label's current key `api_key` and record the result; raise
        ActionFailed (after recording it) when they fail."""
        outcome = await run_steps(
            change.reload,
            change.check,
            await self._target(change, generation, api_name),
            cwd=self.cwd,
            timeout_s=change.reload_timeout_s,
            secrets=await self._secrets(change),
        )
        crashpoints.reached("after_reload")
        record = SwitchRecord(
            api_key=api_key,
            generation=generation,
            ok=outcome.ok,
            at=self.clock(),
            reason=outcome.reason,
        )
        grace_s = change.grace_s
        await self.ledger.commit(
            transitions.switch_recorded(self.ledger.state, change.address, record, grace_s)
        )
        crashpoints.reached("after_reload_state")
        detail = {"generation": generation, "steps": [r.audit_detail() for r in outcome.results]}
        if outcome.ok:
            await self.ledger.audit("reload", change, api_key=api_key, detail=detail)
            return outcome
        await self.ledger.audit("reload", change, api_key=api_key, outcome="failed", detail=detail)
        kept = self._older(change.address, api_key)
        self._emit(SwitchFailed(change.address, api_name, generation, outcome.reason, kept))
        held = ", ".join(kept) or "no older generation"
        raise StepsFailed(
            change.address,
            f"{outcome.reason}; {held} kept live until reload/check succeed for {api_name} "
            f"(`orchestrator rotate --reload-only --label {change.label}`, or the next "
            "`rotate --due` or `apply`)",
        )

    async def reload(self, action: Reload) -> str:
        """A Reload action: the steps, then the deletes of `release` whose grace is over."""
        record = self.ledger.state.keys.get(action.address)
        if record is None or record.api_key != action.api_key:
            raise ActionFailed(
                f"{action.address}: state does not record {action.api_name} as the current "
                "key; run `orchestrator apply`, then plan again"
            )
        await self.switch(action, action.api_key, action.generation, action.api_name)
        message = f"reload/check succeeded for {action.api_name}"
        warnings = []
        due = self._due(action.address, action.release)
        for api_key, api_name in due:
            warnings += await self.deleter.delete(_released(action, api_key, api_name))
        if due:
            message += f"; deleted {', '.join(name for _, name in due)}"
        elif action.release:
            message += f"; grace {action.grace_s:g}s starts now"
        return "; ".join([message, *warnings])

    def _due(self, address: str, release: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        record = self.ledger.state.keys.get(address)
        if record is None:
            return []
        deadlines = {p.api_key: p.delete_after for p in record.previous}
        now = self.clock()
        return [(k, n) for k, n in release if k in deadlines and deadlines[k] <= now]

    def _older(self, address: str, api_key: str) -> tuple[str, ...]:
        record = self.ledger.state.keys.get(address)
        if record is None:
            return ()
        return tuple(p.api_name for p in record.previous if p.api_key != api_key)

    def _emit(self, event: SwitchFailed) -> None:
        if self.on_failed is not None:
            self.on_failed(event)

    async def _target(self, change: StepsChange, generation: int, api_name: str) -> StepTarget:
        sink = self.open_sink(change.sink)
        location = await asyncio.to_thread(bot_facing_location, sink, change.address)
        return StepTarget(
            address=change.address,
            subaccount=change.subaccount,
            label=change.label,
            generation=generation,
            api_name=api_name,
            sink_kind=change.sink.partition(":")[0],
            sink_location=location,
        )

    async def _secrets(self, change: StepsChange) -> list[str]:
        """The material of every generation the sink holds, to scrub from the output."""
        sink = self.open_sink(change.sink)

        def read() -> list[str]:
            held = [sink.read_current(change.address), *sink.read_held(change.address)]
            return [m.secret.get_secret_value() for m in held if m is not None]

        try:
            return await asyncio.to_thread(read)
        except Exception:  # noqa: BLE001 - the generic scrubbing still applies
            return []


def _released(action: Reload, api_key: str, api_name: str) -> DeleteKey:
    return DeleteKey(
        subaccount=action.subaccount,
        label=action.label,
        email=action.email,
        api_key=api_key,
        api_name=api_name,
        permissions=frozenset(),
        reason=f"bots switched to {action.api_name} ({mask(action.api_key)}); grace over",
    )
