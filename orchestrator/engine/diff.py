"""The diff: a pure function from (desired, live, prior state, now) to a changeset.

No I/O here. A label's keys are recognised by the apiName the orchestrator gives them
(`orc-<project>.<label>-g<generation>`) and by the state record's api keys. Which of them is
current, which are in grace and which may go is decided from evidence (`_decide`): the live
account, what the sink holds (`Live.material`, read by refresh) and state, which may make a
delete later but never earlier. Without sink evidence (plan --no-refresh, or a sink that
cannot be read) the decision falls back to state and apiNames alone.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from orchestrator.domain.model import (
    Desired,
    DesiredKey,
    DesiredSubaccount,
    Live,
    LiveKey,
    SinkHolding,
)
from orchestrator.domain.naming import KeyName, api_name, parse_key_name
from orchestrator.engine.changeset import (
    Action,
    Changeset,
    CreateKey,
    CreateSubaccount,
    DeleteKey,
    Finding,
    MoveMaterial,
    Reconcile,
    Reload,
    Rename,
    Rotate,
    Severity,
    UpdateIps,
    UpdatePermissions,
)
from orchestrator.engine.elapsed import age_over, short_duration
from orchestrator.exchange.models import Permission, Permissions
from orchestrator.store.state import KeyRecord, State

VIRTUAL_EMAIL_MARKER = "_virtual@"
#: the sink a state record names for a key imported with its material kept elsewhere.
EXTERNAL_SINK = "external:"


def with_takeovers(desired: Desired, prior: State | None) -> Desired:
    """The plan with each undeclared rename that shares a bot's file made explicit.

    A label that left a pruned sub-account while a new label took its `dotenv:` file is a
    rename nobody declared. Making the new key and deleting the old one would fight over the
    file, so the new label takes the file over: the old key's record and material are filed
    under the new label, then a rotation (grace 0) stores the new key before the old one
    goes. The bot's file holds a live key at every step.
    """
    if prior is None:
        return desired
    grouped = _records_by_subaccount(prior)
    subs = tuple(_with_takeovers(sub, grouped.get(sub.name, {})) for sub in desired.subaccounts)
    return replace(desired, subaccounts=subs)


def _with_takeovers(sub: DesiredSubaccount, records: dict[str, KeyRecord]) -> DesiredSubaccount:
    if not sub.prune:
        return sub
    planned = {k.label for k in sub.keys} | {k.former_label for k in sub.keys if k.former_label}
    gone = {r.sink: label for label, r in records.items() if label not in planned}
    keys = []
    for key in sub.keys:
        old = gone.get(key.sink) if key.sink.startswith("dotenv:") else None
        if old is not None and key.former_label is None and key.label not in records:
            key = replace(key, former_label=old, takes_over=True)
        keys.append(key)
    return replace(sub, keys=tuple(keys))


def diff(
    desired: Desired,
    live: Live,
    prior: State | None,
    now: datetime,
    *,
    targets: Collection[str] = (),
    plan_hash: str = "",
) -> Changeset:
    actions: list[Action] = []
    findings: list[Finding] = []
    grouped = _records_by_subaccount(prior)
    for sub in with_takeovers(desired, prior).subaccounts:
        records = grouped.get(sub.name, {})
        sub_actions, sub_findings = _diff_subaccount(
            sub, live, prior, records, now, desired.project
        )
        actions.extend(sub_actions)
        findings.extend(sub_findings)
    if targets:
        actions = _only_targets(actions, set(targets))
    return Changeset(
        plan_name=desired.plan_name,
        actions=tuple(sorted(actions, key=phase)),
        findings=tuple(findings),
        plan_hash=plan_hash,
        live_fingerprint=live.fingerprint(),
        state_serial=prior.serial if prior else 0,
        state_lineage=prior.lineage if prior else None,
        created_at=now.isoformat(),
        targets=tuple(sorted(targets)),
    )


def resolve_email(sub: DesiredSubaccount, live: Live, prior: State | None) -> str | None:
    """The live email of a plan's sub-account, or None if it does not exist (yet)."""
    emails = live.emails
    if sub.email:
        return sub.email if sub.email in emails else None
    prefix = f"{sub.virtual}{VIRTUAL_EMAIL_MARKER}".lower()
    record = prior.subaccounts.get(sub.name) if prior else None
    if record and record.email in emails and record.email.lower().startswith(prefix):
        return record.email  # state may only pick among this virtual sub-account's emails
    matches = sorted(e for e in emails if e.lower().startswith(prefix))
    return matches[0] if matches else None


def _diff_subaccount(
    sub: DesiredSubaccount,
    live: Live,
    prior: State | None,
    records: dict[str, KeyRecord],
    now: datetime,
    project: str | None,
) -> tuple[list[Action], list[Finding]]:
    email = resolve_email(sub, live, prior)
    if email is None:
        return _missing_subaccount(sub)
    live_keys = live.keys.get(email, ())
    index = _LiveIndex(live_keys, records)
    actions: list[Action] = []
    claimed: set[str] = set()
    findings: list[Finding] = []
    for key in sub.keys:
        holding = live.material.get(key.address)
        record = _record_of(records, key)
        others = index.relevant(key, record, holding)
        key_actions, key_findings, key_claimed = _diff_key(key, email, others, record, now, holding)
        actions += _renames(key, records, holding, others)
        actions.extend(key_actions)
        findings.extend(key_findings)
        claimed |= key_claimed
    leftovers = [k for k in live_keys if k.api_key not in claimed]
    prune_actions, leftover_findings = _leftovers(sub, email, leftovers, records, project)
    return actions + prune_actions, findings + leftover_findings


def _missing_subaccount(sub: DesiredSubaccount) -> tuple[list[Action], list[Finding]]:
    if not sub.virtual:
        finding = Finding(
            kind="missing_subaccount",
            address=sub.name,
            message=f"sub-account {sub.email} does not exist on this account",
            severity=Severity.HIGH,
            fix="create it in Binance first, fix the email, or use `virtual:` to let apply "
            "create a virtual sub-account",
        )
        return [], [finding]
    create_sub = CreateSubaccount(
        subaccount=sub.name, virtual=sub.virtual, reason=f"virtual sub-account {sub.virtual}"
    )
    return [create_sub, *(_create(key, None, 1) for key in sub.keys)], []


def _records_of(prior: State | None, subaccount: str) -> dict[str, KeyRecord]:
    if prior is None:
        return {}
    return {r.label: r for r in prior.keys.values() if r.subaccount == subaccount}


def _records_by_subaccount(prior: State | None) -> dict[str, dict[str, KeyRecord]]:
    """State's records grouped once: sub-account -> label -> record."""
    grouped: dict[str, dict[str, KeyRecord]] = {}
    for record in prior.keys.values() if prior else ():
        grouped.setdefault(record.subaccount, {})[record.label] = record
    return grouped


class _LiveIndex:
    """One sub-account's live keys, indexed once so that each planned key looks only at the
    keys that can concern it, not at every key of the sub-account.

    A planned key's diff reads live keys in two ways only: those whose apiName names its
    label (or former label), and those whose api key state or its sink names. `relevant`
    returns exactly those, in the live listing's order, less the keys state assigns to
    another label of the sub-account: the same answers a scan of the whole list gives.
    """

    def __init__(self, live_keys: tuple[LiveKey, ...], records: dict[str, KeyRecord]) -> None:
        self.keys = live_keys
        self.position = {k.api_key: n for n, k in enumerate(live_keys)}
        self.by_label: dict[str, list[int]] = {}
        for n, k in enumerate(live_keys):
            label = _label_of(k)
            if label is not None:
                self.by_label.setdefault(label, []).append(n)
        self.owners: dict[str, set[str]] = {}
        for label, record in records.items():
            for api in [record.api_key, *(p.api_key for p in record.previous)]:
                self.owners.setdefault(api, set()).add(label)

    def relevant(
        self, key: DesiredKey, record: KeyRecord | None, holding: SinkHolding | None
    ) -> tuple[LiveKey, ...]:
        positions = set(self.by_label.get(key.label, ()))
        if key.former_label:
            positions.update(self.by_label.get(key.former_label, ()))
        for api in _named_api_keys(record, holding):
            if api in self.position:
                positions.add(self.position[api])
        own = (key.label, key.former_label)
        return tuple(
            self.keys[n]
            for n in sorted(positions)
            if all(label in own for label in self.owners.get(self.keys[n].api_key, ()))
        )


def _named_api_keys(record: KeyRecord | None, holding: SinkHolding | None) -> list[str]:
    """Every api key that a label's state record or sink evidence names."""
    apis = [record.api_key, *(p.api_key for p in record.previous)] if record else []
    while holding is not None:
        if holding.current:
            apis.append(holding.current)
        apis.extend(holding.generations)
        holding = holding.moved_from
    return apis


def former_sink(key: DesiredKey, prior: State | None) -> str | None:
    """The sink state recorded for the key when the plan now names another (its `secrets:`
    changed); None otherwise. A key imported with its material kept elsewhere has none here
    to move."""
    record = prior.keys.get(key.address) if prior else None
    if record is None or record.sink in (key.sink, EXTERNAL_SINK, ""):
        return None
    return record.sink


def _record_of(records: dict[str, KeyRecord], key: DesiredKey) -> KeyRecord | None:
    """The label's state record; for a renamed label, the one kept under its old name."""
    record = records.get(key.label)
    if record is None and key.former_label:
        record = records.get(key.former_label)
    return record


def _renames(
    key: DesiredKey,
    records: dict[str, KeyRecord],
    holding: SinkHolding | None,
    live_keys: Iterable[LiveKey],
) -> list[Action]:
    """A rename while state or the sink still file the label's key under its old name."""
    former = key.former_label
    if former is None:
        return []
    in_state = former in records and key.label not in records
    in_sink = holding is not None and holding.under_former_label
    if not in_state and not in_sink:
        return []
    named = [k.api_name for k in live_keys if _names_label(k, former, key.owner)]
    if key.takes_over:
        reason = f"takes over {key.sink} from {former}, which is not in the plan"
    else:
        kept = f"; keeps {', '.join(named)}" if named else ""
        reason = f"renamed from {former} (moved){kept}"
    return [
        Rename(
            subaccount=key.subaccount,
            label=key.label,
            from_label=former,
            sink=key.sink,
            reason=reason,
        )
    ]


@dataclass(frozen=True)
class _Generations:
    """The live keys of one label, with what state says about them."""

    current: LiveKey | None
    stale: tuple[LiveKey, ...]  # our keys of older or duplicate generations, not retired
    retired: tuple[tuple[LiveKey, datetime], ...]  # (key, delete_after) still live
    highest: int


def _generations(key: DesiredKey, live_keys: Iterable[LiveKey], record: KeyRecord | None):
    """The label's generations as state and apiNames tell them (no sink evidence)."""
    by_api_key = {k.api_key: k for k in live_keys}
    retired_after = {p.api_key: p.delete_after for p in record.previous} if record else {}
    named = _named(key, by_api_key.values())
    current = by_api_key.get(record.api_key) if record else None
    if current is None:
        candidates = [k for k in named if k.api_key not in retired_after]
        current = candidates[-1] if candidates else None
    retired = tuple(
        (by_api_key[api], after) for api, after in retired_after.items() if api in by_api_key
    )
    retired_keys = {k.api_key for k, _ in retired}
    stale = tuple(k for k in named if k is not current and k.api_key not in retired_keys)
    return _Generations(current, stale, retired, _highest(named, record))


def _named(key: DesiredKey, live_keys: Iterable[LiveKey]) -> list[LiveKey]:
    """Live keys whose apiName names this label (or the label it was renamed from) of this
    project (or no project: a key named before projects had ids), oldest generation first."""
    labels = (key.label, key.former_label) if key.former_label else (key.label,)
    # every name that parses to a label holds "<label>-g": a cheap test before parsing
    first, last = (f"{label}-g" for label in (labels[0], labels[-1]))
    candidates = [k for k in live_keys if first in k.api_name or last in k.api_name]
    owners = (None, key.owner)
    named = []
    for k in candidates:
        parsed = _parsed(k.api_name)
        if parsed is not None and parsed.label in labels and parsed.owner in owners:
            named.append(k)
    return sorted(named, key=_generation_order)


def _highest(named: Iterable[LiveKey], record: KeyRecord | None, *more: int) -> int:
    generations = [_generation_of(k) for k in named] + list(more)
    if record:
        generations += [record.generation] + [p.generation for p in record.previous]
    return max(generations, default=0)


def _diff_key(
    key: DesiredKey,
    email: str,
    live_keys: tuple[LiveKey, ...],
    record: KeyRecord | None,
    now: datetime,
    holding: SinkHolding | None = None,
) -> tuple[list[Action], list[Finding], set[str]]:
    if holding is not None and not holding.unreadable:
        alive = {k.api_key for k in live_keys}
        move, holding, renew = _sink_change(key, record, holding, alive)
        actions, findings, claimed = _decide(key, email, live_keys, record, holding, now, renew)
        return [*move, *actions], findings, claimed
    actions, claimed = _without_evidence(key, email, live_keys, record, now)
    if holding is None:
        return _recorded_move(key, record) + actions, [], claimed
    kept: list[Action] = [a for a in actions if not isinstance(a, DeleteKey)]
    return kept, [_unreadable(key, holding.unreadable)], claimed


def _without_evidence(
    key: DesiredKey,
    email: str,
    live_keys: tuple[LiveKey, ...],
    record: KeyRecord | None,
    now: datetime,
) -> tuple[list[Action], set[str]]:
    """The label's changes from state and apiNames alone, for a diff given no sink evidence
    (plan --no-refresh, pure tests)."""
    gens = _generations(key, live_keys, record)
    actions = _current_changes(key, email, gens.current, record, gens.highest, now)
    for stale in gens.stale:
        reason = f"superseded generation g{_generation_of(stale)} of {key.label}"
        actions.append(_delete(key.subaccount, email, stale, reason, key.label))
    ended = [
        (retired, delete_after) for retired, delete_after in gens.retired if delete_after <= now
    ]
    if gens.current is not None and _waits_for_switch(key, record, gens.current, gens.retired):
        actions = [a for a in actions if not isinstance(a, DeleteKey)]
        actions += _reload(key, email, gens.current, record, [k for k, _ in ended], actions)
    else:
        actions += [_grace_ended(key, email, k, after, now) for k, after in ended]
    claimed = {k.api_key for k in gens.stale} | {k.api_key for k, _ in gens.retired}
    if gens.current is not None:
        claimed.add(gens.current.api_key)
    return actions, claimed


def _sink_change(
    key: DesiredKey, record: KeyRecord | None, holding: SinkHolding, alive: set[str]
) -> tuple[list[Action], SinkHolding, str | None]:
    """For a key whose `secrets:` changed: (the move, the evidence as it stands once the move
    is done, why a rotation is needed instead). The material is moved when the old sink
    holds a live generation of the label (or the new one already took them over, after an
    interrupted move); otherwise a new key is made in the new sink, and the recorded key,
    whose material this checkout cannot read, is kept for a person to delete."""
    former = holding.moved_from
    if former is None or record is None:
        return [], holding, None
    settled = replace(holding, moved_from=None)
    in_new = holding.current if holding.current in alive else None
    if not former.unreadable:
        kept = {api: gen for api, gen in former.generations.items() if api in alive}
        in_old = former.current if former.current in kept else None
        if in_old or in_new:
            current = in_old or in_new or ""
            held = sorted((gen, api) for api, gen in kept.items() if api != current)
            keep = tuple(api for _, api in held) + ((current,) if in_old else ())
            move = _move(key, record, keep, current, [kept[api] for api in keep])
            evidence = replace(settled, current=current, generations=holding.generations | kept)
            return [move], evidence, None
        why = f"{record.sink} holds no live key of {key.label}"
    else:
        why = f"{record.sink} cannot be read ({former.unreadable})"
    if record.api_key not in alive or in_new:
        return [], settled, None
    evidence = replace(
        settled,
        current=record.api_key,
        generations=holding.generations | {record.api_key: record.generation},
    )
    renew = (
        f"secrets: {record.sink} -> {key.sink}, but {why}: a new key is stored in {key.sink}; "
        f"{record.api_name} is kept (its material may still be in use) until you delete it"
    )
    return [], evidence, renew


def _move(
    key: DesiredKey, record: KeyRecord, keep: tuple[str, ...], current: str, gens: list[int]
) -> MoveMaterial:
    if keep:
        copied = ", ".join(f"g{gen}" for gen in gens)
        what = f"{copied} copied and read back, then destroyed in {record.sink}"
    else:
        what = f"material already in {key.sink}; {record.sink} emptied"
    return MoveMaterial(
        subaccount=key.subaccount,
        label=key.label,
        from_sink=record.sink,
        sink=key.sink,
        current=current,
        keep=keep,
        reason=f"secrets: {record.sink} -> {key.sink}: {what}",
    )


def _recorded_move(key: DesiredKey, record: KeyRecord | None) -> list[Action]:
    """A changed `secrets:` as state alone tells it (plan --no-refresh reads no sink)."""
    if record is None or record.sink in (key.sink, EXTERNAL_SINK, ""):
        return []
    keep = tuple(p.api_key for p in record.previous) + (record.api_key,)
    gens = [p.generation for p in record.previous] + [record.generation]
    return [_move(key, record, keep, record.api_key, gens)]


def _unreadable(key: DesiredKey, why: str) -> Finding:
    return Finding(
        kind="sink_unreadable",
        address=key.address,
        message=f"{key.sink} cannot be read ({why}); none of this label's keys is deleted "
        "until it can, since which key bots hold is unknown",
        severity=Severity.HIGH,
        fix=f"make {key.sink} readable from this machine, then run plan again",
    )


def _current_changes(
    key: DesiredKey,
    email: str,
    current: LiveKey | None,
    record: KeyRecord | None,
    highest: int,
    now: datetime,
    renew: str | None = None,
) -> list[Action]:
    """Make the label's current key (none live: create one), or bring it to the plan. A
    key of another `key_type` than planned, or `renew` (why), is rotated."""
    if current is None:
        return [_create(key, email, highest + 1)]
    if key.takes_over:
        reason = (
            f"takes over {key.sink} from {key.former_label} (not in the plan): the new key is "
            f"stored before {current.api_name} is deleted"
        )
        return [replace(_rotate_action(key, email, current, highest + 1, reason), grace_s=0.0)]
    recorded = record if record and record.api_key == current.api_key else None
    actions: list[Action] = []
    actions += _permission_update(key, email, current, recorded)
    actions += _ip_update(key, email, current, recorded)
    rotation = _rotation(key, email, current, recorded, highest + 1, now)
    reason = renew or _key_type_change(key, current, recorded)
    if rotation is None and reason:
        rotation = _rotate_action(key, email, current, highest + 1, reason)
    if rotation:
        actions.append(rotation)
    return actions


def _key_type_change(key: DesiredKey, current: LiveKey, recorded: KeyRecord | None) -> str:
    """Why the current key is replaced when the plan asks for another key type (Binance
    cannot change a key's type): a new key of the planned type, the old one in grace."""
    if recorded is None or recorded.key_type == key.key_type:
        return ""
    grace = f"kept for grace {_ago(key.grace)}" if key.grace else "deleted once it is stored"
    return (
        f"key_type {recorded.key_type} -> {key.key_type}: a new {key.key_type} key; "
        f"{current.api_name} {grace}"
    )


def _decide(
    key: DesiredKey,
    email: str,
    live_keys: tuple[LiveKey, ...],
    record: KeyRecord | None,
    holding: SinkHolding,
    now: datetime,
    renew: str | None = None,
) -> tuple[list[Action], list[Finding], set[str]]:
    """The label's generations decided from evidence: the live account, what its sink holds,
    and state, which may only make a delete later, never earlier.

    - current: the live key whose material the sink hands to bots. If that slot holds no
      live key, a new generation is made (and stored, and made current) first.
    - every other live generation whose material the sink keeps is in grace: until the
      deadline state recorded, or, where state has none, for `grace` from now; then deleted.
    - a live generation with no material in the sink is kept and reported: its material may
      be where this checkout cannot see, so only a person decides to delete it.
    - material of keys that are not live is destroyed; state forgets generations that are gone.
    """
    alive = {k.api_key: k for k in live_keys}
    mine = _mine(key, live_keys, record)
    current = _bot_facing(alive, holding, record)
    if current is not None and current not in mine:
        mine.append(current)
    highest = _highest(mine, record, *holding.generations.values())
    actions: list[Action] = []
    findings: list[Finding] = []
    retire: list[tuple[str, str]] = []
    deadlines = {p.api_key: p.delete_after for p in record.previous} if record else {}
    older: list[LiveKey] = []  # generations whose material is kept: each goes in time
    ended: list[LiveKey] = []  # ... and of those, the ones whose grace is over
    for other in mine:
        if other is current:
            continue
        if not holding.holds(other.api_key):
            findings.append(_unbacked(key, other))
            continue
        older.append(other)
        if other.api_key not in deadlines:
            retire.append((other.api_key, other.api_name))
        elif deadlines[other.api_key] <= now:
            ended.append(other)
    if current is None:  # the new generation's record keeps these in grace
        made = _create(key, email, highest + 1, tuple(retire))
        retire = []
        actions.insert(0, made)
    else:
        actions[:0] = _current_changes(key, email, current, record, highest, now, renew)
        if _waits_for_switch(key, record, current, older):
            actions += _reload(key, email, current, record, ended, actions)
            findings += _switch_failed(key, record, current, older)
        else:
            actions += [_grace_ended(key, email, k, deadlines[k.api_key], now) for k in ended]
    reconcile = _reconcile(key, email, record, current, holding, alive, retire)
    return ([reconcile] if reconcile else []) + actions, findings, {k.api_key for k in mine}


def _bot_facing(
    alive: dict[str, LiveKey], holding: SinkHolding, record: KeyRecord | None
) -> LiveKey | None:
    """The live key bots read: the one in the sink's bot-facing slot, or an imported key whose
    material was never in a sink of ours."""
    if holding.current in alive:
        return alive[holding.current]
    if record is not None and record.sink == EXTERNAL_SINK:
        return alive.get(record.api_key)
    return None


def _mine(key: DesiredKey, live_keys: Iterable[LiveKey], record: KeyRecord | None) -> list[LiveKey]:
    """The label's live keys: named for it, or recorded for it in state (an imported key)."""
    recorded = {record.api_key, *(p.api_key for p in record.previous)} if record else set()
    named = _named(key, live_keys)
    return named + [k for k in live_keys if k.api_key in recorded and k not in named]


def _reconcile(
    key: DesiredKey,
    email: str,
    record: KeyRecord | None,
    current: LiveKey | None,
    holding: SinkHolding,
    alive: dict[str, LiveKey],
    retire: list[tuple[str, str]],
) -> Reconcile | None:
    adopt = current if current and (record is None or record.api_key != current.api_key) else None
    gone = [p for p in record.previous if p.api_key not in alive] if record else []
    dead = sorted(api for api in holding.generations if api not in alive)
    if adopt is None and not retire and not gone and not dead:
        return None
    reasons = []
    if adopt is not None:
        was = f" (state said {record.api_name})" if record else " (not in state)"
        reasons.append(f"{adopt.api_name} is the key bots read{was}")
    if retire:
        names = ", ".join(name for _, name in retire)
        reasons.append(f"{names} kept for grace {_ago(key.grace)}, then deleted")
    if gone:
        reasons.append(f"forget {', '.join(p.api_name for p in gone)} (no longer live)")
    if dead:
        gens = ", ".join(f"g{holding.generations[api]}" for api in dead)
        reasons.append(f"destroy material of deleted key(s) {gens}")
    return Reconcile(
        subaccount=key.subaccount,
        label=key.label,
        email=email,
        key_type=key.key_type,
        sink=key.sink,
        grace_s=key.grace.total_seconds(),
        adopt_api_key=adopt.api_key if adopt else None,
        adopt_api_name=adopt.api_name if adopt else "",
        adopt_permissions=adopt.permissions if adopt else frozenset(),
        adopt_ips=(adopt.ips if adopt.restricted else None) if adopt else None,
        adopt_created_ms=adopt.created_ms if adopt else 0,
        retire=tuple(retire),
        forget=tuple(p.api_key for p in gone),
        destroy=tuple(dead),
        reason="; ".join(reasons),
    )


def _steps(key: DesiredKey) -> dict:
    """The key's reload and check steps, as the actions that make a key carry them."""
    return {
        "reload": key.reload,
        "check": key.check,
        "reload_timeout_s": key.reload_timeout.total_seconds(),
    }


def _waits_for_switch(
    key: DesiredKey, record: KeyRecord | None, current: LiveKey, older: Collection
) -> bool:
    """Whether older generations must wait for the label's reload/check steps to succeed
    for `current`: the key has steps, an older generation is live, and state records no
    success for `current` (state lost or restored: the steps run again)."""
    if not key.switches or not older:
        return False
    return record is None or not record.switched_to(current.api_key)


def _reload(
    key: DesiredKey,
    email: str,
    current: LiveKey,
    record: KeyRecord | None,
    ended: list[LiveKey],
    actions: list[Action],
) -> list[Reload]:
    """The steps for `current`, older generations waiting on them; none while the label is
    rotated in this changeset (the rotation runs the steps for its new key)."""
    if any(isinstance(a, Rotate) for a in actions):
        return []
    waiting = ", ".join(k.api_name for k in ended) or "older generations"
    switched = record.switched if record else None
    if switched is not None and switched.api_key == current.api_key and not switched.ok:
        why = f"reload/check failed at {switched.at:%Y-%m-%d %H:%M} UTC: {switched.reason}"
    else:
        why = f"no successful reload/check recorded for {current.api_name}"
    return [
        Reload(
            subaccount=key.subaccount,
            label=key.label,
            email=email,
            api_key=current.api_key,
            api_name=current.api_name,
            generation=_current_generation(current, record),
            sink=key.sink,
            reload=key.reload,
            check=key.check,
            reload_timeout_s=key.reload_timeout.total_seconds(),
            grace_s=key.grace.total_seconds(),
            release=tuple((k.api_key, k.api_name) for k in ended),
            reason=f"{waiting} waiting for bots to switch ({why}); runs reload/check, then "
            f"grace {_ago(key.grace)}",
        )
    ]


def _switch_failed(
    key: DesiredKey, record: KeyRecord | None, current: LiveKey, older: list[LiveKey]
) -> list[Finding]:
    """The label's last reload/check for its current key failed: bots may not use it yet."""
    switched = record.switched if record else None
    if switched is None or switched.ok or switched.api_key != current.api_key:
        return []
    kept = ", ".join(k.api_name for k in older)
    return [
        Finding(
            kind="reload_failed",
            address=key.address,
            message=f"reload/check for {current.api_name} failed at "
            f"{switched.at:%Y-%m-%d %H:%M} UTC ({switched.reason}); {kept} kept live until "
            "they succeed",
            severity=Severity.HIGH,
            api_key=current.api_key,
            fix=f"make the bot take its new key, then `orchestrator rotate --reload-only "
            f"--label {key.label}` (or let the next `rotate --due` retry)",
        )
    ]


def _current_generation(current: LiveKey, record: KeyRecord | None) -> int:
    if record is not None and record.api_key == current.api_key:
        return record.generation
    return _generation_of(current) or 1


def _unbacked(key: DesiredKey, live_key: LiveKey) -> Finding:
    return Finding(
        kind="unbacked",
        address=key.address,
        message=(
            f"{live_key.api_name} is live but {key.sink} holds none of its material; it is "
            "kept, since its material may be kept elsewhere"
        ),
        severity=Severity.HIGH,
        api_key=live_key.api_key,
        fix="if nothing uses it, delete it in Binance's API management page",
    )


def _grace_ended(
    key: DesiredKey, email: str, retired: LiveKey, delete_after: datetime, now: datetime
) -> DeleteKey:
    reason = f"rotated out, grace ended {_ago(now - delete_after)} ago"
    return _delete(key.subaccount, email, retired, reason, key.label)


def _create(
    key: DesiredKey, email: str | None, generation: int, retire: tuple[tuple[str, str], ...] = ()
) -> CreateKey:
    reason = "not live"
    if retire:
        names = ", ".join(name for _, name in retire)
        reason = f"no live key in the sink; {names} kept for grace {_ago(key.grace)}"
    return CreateKey(
        subaccount=key.subaccount,
        label=key.label,
        email=email,
        api_name=api_name(key.label, generation, key.owner),
        generation=generation,
        permissions=key.permissions,
        ips=key.ips,
        key_type=key.key_type,
        sink=key.sink,
        verify=key.verify,
        retire=retire,
        grace_s=key.grace.total_seconds() if retire else 0.0,
        **_steps(key),
        reason=reason,
    )


def _permission_update(
    key: DesiredKey, email: str, current: LiveKey, recorded: KeyRecord | None
) -> list[Action]:
    if current.permissions == key.permissions:
        return []
    granted = _perms(recorded.permissions) if recorded else frozenset()
    unexplained = current.permissions - key.permissions - granted
    change = _signed(key.permissions - current.permissions, current.permissions - key.permissions)
    reason = f"permissions: {change}"
    if unexplained:
        reason += f" ({_names(unexplained)} granted outside the plan: possible compromise)"
    update = UpdatePermissions(
        subaccount=key.subaccount,
        label=key.label,
        email=email,
        api_key=current.api_key,
        api_name=current.api_name,
        permissions=key.permissions,
        previous_permissions=current.permissions,
        key_type=key.key_type,
        sink=key.sink,
        reason=reason,
        security=bool(unexplained),
    )
    return [update]


def _ip_update(
    key: DesiredKey, email: str, current: LiveKey, recorded: KeyRecord | None
) -> list[Action]:
    want = set(key.ips)
    if not want:
        if not current.restricted:
            return []
        return [_ip_action(key, email, current, (), (), True, "ips: remove whitelist", False)]
    have = set(current.ips) if current.restricted else set()
    add = tuple(sorted(want - have)) if current.restricted else tuple(sorted(want))
    remove = tuple(sorted(set(current.ips) - want))
    if current.restricted and not add and not remove:
        return []
    if not current.restricted:
        reason = f"ips: restrict to {', '.join(sorted(want))} (live key accepts any IP"
        security = recorded is None or bool(recorded.ips)
        reason += ": possible compromise)" if security else ")"
        return [_ip_action(key, email, current, add, remove, False, reason, security)]
    unexplained = set(remove) - set(recorded.ips if recorded else ())
    reason = "ips: " + " ".join([f"+{ip}" for ip in add] + [f"-{ip}" for ip in remove])
    if unexplained:
        reason += f" ({', '.join(sorted(unexplained))} added outside the plan: possible compromise)"
    return [_ip_action(key, email, current, add, remove, False, reason, bool(unexplained))]


def _ip_action(
    key: DesiredKey,
    email: str,
    current: LiveKey,
    add: tuple[str, ...],
    remove: tuple[str, ...],
    unrestrict: bool,
    reason: str,
    security: bool,
) -> UpdateIps:
    return UpdateIps(
        subaccount=key.subaccount,
        label=key.label,
        email=email,
        api_key=current.api_key,
        api_name=current.api_name,
        ips=key.ips,
        ips_add=tuple(add),
        ips_remove=tuple(remove),
        unrestrict=unrestrict,
        permissions=current.permissions,
        key_type=key.key_type,
        sink=key.sink,
        reason=reason,
        security=security,
    )


def _rotate_action(
    key: DesiredKey, email: str, replaced: LiveKey, generation: int, reason: str
) -> Rotate:
    return Rotate(
        subaccount=key.subaccount,
        label=key.label,
        email=email,
        api_key=replaced.api_key,
        replaced_name=replaced.api_name,
        api_name=api_name(key.label, generation, key.owner),
        generation=generation,
        permissions=key.permissions,
        ips=key.ips,
        key_type=key.key_type,
        sink=key.sink,
        grace_s=key.grace.total_seconds(),
        verify=key.verify,
        **_steps(key),
        reason=reason,
    )


def _rotation(
    key: DesiredKey,
    email: str,
    current: LiveKey,
    recorded: KeyRecord | None,
    generation: int,
    now: datetime,
) -> Rotate | None:
    if key.rotate_after is None:
        return None
    created = _created_at(current, recorded)
    if created is None or now - created <= key.rotate_after:
        return None
    reason = age_over(now - created, key.rotate_after)
    return _rotate_action(key, email, current, generation, reason)


def _leftovers(
    sub: DesiredSubaccount,
    email: str,
    leftovers: list[LiveKey],
    records: dict[str, KeyRecord],
    project: str | None,
) -> tuple[list[Action], list[Finding]]:
    """Live keys of the sub-account that no planned label claims. Only keys this project
    owns, or keys no orchestrator project made, are pruned; another project's keys never."""
    actions: list[Action] = []
    findings: list[Finding] = []
    others = _other_owners(leftovers, records, project)
    if others:
        findings.append(_shared_subaccount(sub, others, project))
    for key in sorted(leftovers, key=lambda k: (k.api_name, k.api_key)):
        if key.api_key in others:
            continue
        if sub.prune:
            actions.append(_delete(sub.name, email, key, "not in plan (prune)", None))
            continue
        findings.append(_unmanaged(sub, key, records))
    return actions, findings


def _unmanaged(sub: DesiredSubaccount, key: LiveKey, records: dict[str, KeyRecord]) -> Finding:
    """A live key the plan does not name, kept. It is risky when it can trade or move funds:
    nobody reviewed what it may do, so a leak of it is a loss the plan cannot prevent."""
    was = _label_of(key)
    note = f" (was managed as {was}; removed from the plan)" if was in records else ""
    message = f"not in plan, not deleted (set prune: true){note}"
    if key.permissions:
        whitelist = f"only from {', '.join(key.ips)}" if key.restricted else "from any IP"
        message += f"; risky: it can trade or move funds ({_names(key.permissions)}) {whitelist}"
    return Finding(
        kind="unmanaged",
        address=f"{sub.name}/{key.api_name}",
        message=message,
        severity=Severity.HIGH,
        api_key=key.api_key,
        fix=f"add it to the plan and `orchestrator import`, or set prune: true on {sub.name}",
        risky=bool(key.permissions),
    )


def _other_owners(
    leftovers: list[LiveKey], records: dict[str, KeyRecord], project: str | None
) -> dict[str, str]:
    """api key -> owner, for leftovers another orchestrator project made: its id is in the
    apiName, or (a name from before projects had ids) this project's state does not know
    the label."""
    if project is None:
        return {}
    owned: dict[str, str] = {}
    for key in leftovers:
        parsed = _parsed(key.api_name)
        if parsed is None or parsed.owner == project:
            continue
        if parsed.owner is not None:
            owned[key.api_key] = parsed.owner
        elif parsed.label not in records:
            owned[key.api_key] = "an unnamed project"
    return owned


def _shared_subaccount(
    sub: DesiredSubaccount, others: dict[str, str], project: str | None
) -> Finding:
    owners = sorted(set(others.values()))
    return Finding(
        kind="shared_subaccount",
        address=sub.name,
        message=(
            f"keys of {', '.join(owners)} live in this sub-account; project {project} and "
            f"{', '.join(owners)} both manage it, so nothing here is applied or pruned"
        ),
        severity=Severity.HIGH,
        fix="manage each sub-account from one project: move these keys' labels into this plan "
        "(and `orchestrator import` them), or take the sub-account out of one of the plans",
    )


def _delete(subaccount: str, email: str, key: LiveKey, reason: str, label: str | None) -> DeleteKey:
    return DeleteKey(
        subaccount=subaccount,
        label=label,
        email=email,
        api_key=key.api_key,
        api_name=key.api_name,
        permissions=key.permissions,
        reason=reason,
    )


def _only_targets(actions: list[Action], targets: set[str]) -> list[Action]:
    def wanted(action: Action) -> bool:
        return getattr(action, "label", None) in targets or action.address in targets

    kept = [a for a in actions if not isinstance(a, CreateSubaccount) and wanted(a)]
    needed_subs = {a.subaccount for a in kept if isinstance(a, CreateKey) and a.email is None}
    subs = [a for a in actions if isinstance(a, CreateSubaccount) and a.subaccount in needed_subs]
    return subs + kept


def phase(action: Action) -> int:
    """Sub-accounts first; then state and sinks brought in line with the evidence; changes to
    existing keys; deletes of keys nobody made with this tool (freeing slots); creates;
    rotations; the reload/check steps of keys whose older generations wait on them; and last
    the deletes of our own keys, so that a key is replaced (made, its material stored, bots
    switched) before the key it replaces goes."""
    match action:
        case CreateSubaccount():
            return 0
        case Rename() | MoveMaterial():
            return 1
        case Reconcile():
            return 2
        case UpdatePermissions() | UpdateIps():
            return 3
        case DeleteKey(label=None) if _parsed(action.api_name) is None:
            return 4
        case CreateKey():
            return 5
        case Rotate():
            return 6
        case Reload():
            return 7
        case DeleteKey():
            return 8


@lru_cache(maxsize=65_536)
def _parsed(name: str) -> KeyName | None:
    """parse_key_name, memoized: each live key's name is looked at once per desired key."""
    return parse_key_name(name)


def _label_of(key: LiveKey) -> str | None:
    parsed = _parsed(key.api_name)
    return parsed.label if parsed else None


def _names_label(key: LiveKey, label: str, owner: str | None) -> bool:
    """Whether the key's apiName names `label` of project `owner`; a name without a project
    (made before projects had ids) counts for any project."""
    parsed = _parsed(key.api_name)
    return parsed is not None and parsed.label == label and parsed.owner in (None, owner)


def _generation_of(key: LiveKey) -> int:
    parsed = _parsed(key.api_name)
    return parsed.generation if parsed else 0


def _generation_order(key: LiveKey) -> tuple[int, int, str]:
    return (_generation_of(key), key.created_ms, key.api_key)


def _created_at(current: LiveKey, recorded: KeyRecord | None) -> datetime | None:
    if recorded is not None:
        return recorded.created_at
    if current.created_ms > 0:
        return datetime.fromtimestamp(current.created_ms / 1000, tz=UTC)
    return None


def _perms(values: Iterable[str]) -> Permissions:
    return frozenset(Permission(v) for v in values)


def _names(perms: Permissions) -> str:
    return ", ".join(sorted(p.value for p in perms))


def _signed(added: Permissions, removed: Permissions) -> str:
    return " ".join(
        [f"+{p.value}" for p in sorted(added)] + [f"-{p.value}" for p in sorted(removed)]
    )


def _ago(delta: timedelta) -> str:
    """A duration in at most two units: 34d, 5h, 1h02m, 40s."""
    return short_duration(delta)


def current_keys(desired: Desired, live: Live, prior: State | None) -> dict[str, LiveKey]:
    """The live key the diff treats as current for each planned address (`sub/label`)."""
    found: dict[str, LiveKey] = {}
    grouped = _records_by_subaccount(prior)
    for sub in desired.subaccounts:
        email = resolve_email(sub, live, prior)
        if email is None:
            continue
        records = grouped.get(sub.name, {})
        index = _LiveIndex(live.keys.get(email, ()), records)
        for key in sub.keys:
            holding = live.material.get(key.address)
            relevant = index.relevant(key, _record_of(records, key), holding)
            current, _ = _current_of(key, relevant, records, holding)
            if current is not None:
                found[key.address] = current
    return found


def _current_of(
    key: DesiredKey,
    live_keys: Iterable[LiveKey],
    records: dict[str, KeyRecord],
    holding: SinkHolding | None,
) -> tuple[LiveKey | None, int]:
    """(current key, highest generation known) of a label, as the diff decides them, from
    the live keys that concern it (`_LiveIndex.relevant`)."""
    others = list(live_keys)
    record = _record_of(records, key)
    if holding is None:
        gens = _generations(key, others, record)
        return gens.current, gens.highest
    alive = {k.api_key: k for k in others}
    _, holding, _ = _sink_change(key, record, holding, set(alive))
    current = _bot_facing(alive, holding, record)
    mine = _mine(key, others, record)
    return current, _highest(mine, record, *holding.generations.values())


def forced_rotation(
    desired: Desired, live: Live, prior: State | None, address: str
) -> Rotate | None:
    """A rotation of the planned key at `address` now, whatever its age (`rotate --label`);
    None when it has no live key."""
    found = _planned_current(desired, live, prior, address)
    if found is None:
        return None
    key, email, current, highest, _ = found
    return _rotate_action(key, email, current, highest + 1, "rotation requested")


def forced_reload(desired: Desired, live: Live, prior: State | None, address: str) -> Reload | None:
    """The reload/check steps of the planned key at `address` for its current key now,
    whatever state records (`rotate --reload-only`); None when it has no live key."""
    found = _planned_current(desired, live, prior, address)
    if found is None:
        return None
    key, email, current, _, record = found
    (reload,) = _reload(key, email, current, record, [], [])
    return replace(reload, reason="reload requested")


def _planned_current(desired: Desired, live: Live, prior: State | None, address: str):
    """(planned key, email, its current live key, highest generation, state's record) of the
    planned key at `address`; None when it has no live key (or no sub-account yet)."""
    for sub in desired.subaccounts:
        for key in sub.keys:
            if key.address != address:
                continue
            email = resolve_email(sub, live, prior)
            if email is None:
                return None
            records = _records_of(prior, sub.name)
            holding = live.material.get(key.address)
            record = _record_of(records, key)
            relevant = _LiveIndex(live.keys.get(email, ()), records).relevant(key, record, holding)
            current, highest = _current_of(key, relevant, records, holding)
            if current is None:
                return None
            return key, email, current, highest, record
    return None
