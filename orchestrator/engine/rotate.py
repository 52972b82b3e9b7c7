"""Which rotations to run: due ones (`rotate --due`), named ones (`rotate --label`), the
reload/check steps older generations wait on, and the deletes of previous generations whose
grace has passed; or only the steps (`rotate --reload-only`). Pure, like the diff.

The rotation itself (create next generation with material pending, record, verify, promote,
delete previous) is carried out by the apply executor, step by step and journaled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime

from orchestrator.config.policy import MAX_KEYS_PER_ACCOUNT
from orchestrator.domain.model import Desired, Live
from orchestrator.engine.changeset import (
    Action,
    Changeset,
    DeleteKey,
    MoveMaterial,
    Reload,
    Rotate,
)
from orchestrator.engine.diff import diff, forced_reload, forced_rotation, resolve_email
from orchestrator.store.state import State

KEY_CAP = MAX_KEYS_PER_ACCOUNT


class RotationRefused(Exception):
    """The rotation cannot start (unknown label, or it would exceed the 30-key cap)."""


def rotation_changeset(
    desired: Desired,
    live: Live,
    state: State | None,
    now: datetime,
    *,
    due: bool,
    labels: Collection[str] = (),
    plan_hash: str = "",
) -> Changeset:
    """Rotations asked for (due ones with `due`, plus every key named in `labels`) and the
    deletes of retired keys whose grace has passed. A rotated key whose `secrets:` changed
    has its material moved first, so the new generation joins the old ones in the new sink. Raises RotationRefused before any change
    if a rotation would take a sub-account past 30 keys."""
    planned = _planned(desired, labels)
    full = diff(desired, live, state, now, plan_hash=plan_hash)
    wanted = {planned[label].address for label in labels}
    actions = [a for a in full.actions if _retired_delete(a, state)]
    actions += [a for a in full.actions if isinstance(a, Rotate) and (due or a.address in wanted)]
    rotating = {a.address for a in actions if isinstance(a, Rotate)}
    actions += [a for a in full.actions if isinstance(a, Reload) and a.address not in rotating]
    for address in sorted(wanted - rotating):
        forced = forced_rotation(desired, live, state, address)
        if forced is None:
            raise RotationRefused(f"{address} has no live key to rotate; run `orchestrator apply`")
        actions.append(forced)
    _check_cap(desired, live, state, [a for a in actions if isinstance(a, Rotate)])
    rotated = {a.address for a in actions if isinstance(a, Rotate)}
    moves = [a for a in full.actions if isinstance(a, MoveMaterial) and a.address in rotated]
    return replace(full, actions=tuple(moves + actions))


def reload_changeset(
    desired: Desired,
    live: Live,
    state: State | None,
    now: datetime,
    *,
    labels: Collection[str],
    plan_hash: str = "",
) -> Changeset:
    """The reload/check steps of the named keys, for their current generation, whatever state
    records (`rotate --reload-only`): for a bot that was down when its key rotated."""
    planned = _planned(desired, labels)
    full = diff(desired, live, state, now, plan_hash=plan_hash)
    planned_reloads = {a.address: a for a in full.actions if isinstance(a, Reload)}
    actions: list[Action] = []
    for address in sorted({planned[label].address for label in labels}):
        key = planned[address]
        if not key.switches:
            raise RotationRefused(
                f"{address} has no `reload:` or `check:` in the plan (nor in `defaults:`)"
            )
        reload = planned_reloads.get(address) or forced_reload(desired, live, state, address)
        if reload is None:
            raise RotationRefused(f"{address} has no live key to reload; run `orchestrator apply`")
        actions.append(reload)
    return replace(full, actions=tuple(actions))


def _planned(desired: Desired, labels: Collection[str]) -> dict:
    """Planned keys by label and by address; RotationRefused naming any unknown label."""
    planned = {k.label: k for k in desired.keys()} | {k.address: k for k in desired.keys()}
    unknown = [label for label in labels if label not in planned]
    if unknown:
        raise RotationRefused(
            f"no key labelled {', '.join(unknown)} in the plan "
            f"(labels: {', '.join(sorted(k.label for k in desired.keys()))})"
        )
    return planned


def _retired_delete(action: Action, state: State | None) -> bool:
    """A delete of a previous generation that state retired (its grace has passed)."""
    if not isinstance(action, DeleteKey) or state is None:
        return False
    return any(
        p.api_key == action.api_key for record in state.keys.values() for p in record.previous
    )


def _check_cap(desired: Desired, live: Live, state: State | None, rotations: list[Rotate]) -> None:
    """Every rotation holds one extra key until its previous one is deleted."""
    extra = Counter(a.email for a in rotations)
    names = {resolve_email(s, live, state): s.name for s in desired.subaccounts}
    over = []
    for email, count in sorted(extra.items()):
        total = len(live.keys.get(email, ())) + count
        if total > KEY_CAP:
            over.append(
                f"{names.get(email, email)}: {len(live.keys.get(email, ()))} keys live + "
                f"{count} rotating = {total} > {KEY_CAP}"
            )
    if over:
        raise RotationRefused(
            "rotation would exceed Binance's 30-key cap: "
            + "; ".join(over)
            + ". Delete unused keys (prune: true, or `orchestrator lockdown --subaccount`) or "
            "rotate fewer labels at once with --label."
        )
