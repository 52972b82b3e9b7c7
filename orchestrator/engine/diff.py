"""The diff: a pure function from (desired, live, prior state, now) to a changeset.

No I/O here. Keys are recognised by the state record's api key first, then by the apiName the
orchestrator gives its keys (`orc-<label>-g<generation>`), so that a lost state or a crash
between a create and its state write still converges without duplicates.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from orchestrator.domain.model import Desired, DesiredKey, DesiredSubaccount, Live, LiveKey
from orchestrator.domain.naming import api_name, parse_api_name
from orchestrator.engine.changeset import (
    Action,
    Changeset,
    CreateKey,
    CreateSubaccount,
    DeleteKey,
    Finding,
    Rotate,
    Severity,
    UpdateIps,
    UpdatePermissions,
)
from orchestrator.exchange.models import Permission, Permissions
from orchestrator.store.state import KeyRecord, State

VIRTUAL_EMAIL_MARKER = "_virtual@"


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
    for sub in desired.subaccounts:
        sub_actions, sub_findings = _diff_subaccount(sub, live, prior, now)
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
    emails = {s.email for s in live.subaccounts}
    if sub.email:
        return sub.email if sub.email in emails else None
    record = prior.subaccounts.get(sub.name) if prior else None
    if record and record.email in emails:
        return record.email
    prefix = f"{sub.virtual}{VIRTUAL_EMAIL_MARKER}".lower()
    matches = sorted(e for e in emails if e.lower().startswith(prefix))
    return matches[0] if matches else None


def _diff_subaccount(
    sub: DesiredSubaccount, live: Live, prior: State | None, now: datetime
) -> tuple[list[Action], list[Finding]]:
    email = resolve_email(sub, live, prior)
    if email is None:
        return _missing_subaccount(sub)
    live_keys = live.keys.get(email, ())
    records = _records_of(prior, sub.name)
    actions: list[Action] = []
    claimed: set[str] = set()
    for key in sub.keys:
        elsewhere = _recorded_keys(records, key.label)
        others = [k for k in live_keys if k.api_key not in elsewhere]
        key_actions, key_claimed = _diff_key(key, email, tuple(others), records.get(key.label), now)
        actions.extend(key_actions)
        claimed |= key_claimed
    leftovers = [k for k in live_keys if k.api_key not in claimed]
    prune_actions, findings = _leftovers(sub, email, leftovers, records)
    return actions + prune_actions, findings


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


def _recorded_keys(records: dict[str, KeyRecord], except_label: str) -> set[str]:
    """Api keys that state assigns to other labels: never claimed by name for this one."""
    return {
        api
        for label, record in records.items()
        if label != except_label
        for api in [record.api_key, *(p.api_key for p in record.previous)]
    }


@dataclass(frozen=True)
class _Generations:
    """The live keys of one label, with what state says about them."""

    current: LiveKey | None
    stale: tuple[LiveKey, ...]  # our keys of older or duplicate generations, not retired
    retired: tuple[tuple[LiveKey, datetime], ...]  # (key, delete_after) still live
    highest: int


def _generations(key: DesiredKey, live_keys: Iterable[LiveKey], record: KeyRecord | None):
    by_api_key = {k.api_key: k for k in live_keys}
    retired_after = {p.api_key: p.delete_after for p in record.previous} if record else {}
    named = sorted(
        (k for k in by_api_key.values() if _label_of(k) == key.label), key=_generation_order
    )
    current = by_api_key.get(record.api_key) if record else None
    if current is None:
        candidates = [k for k in named if k.api_key not in retired_after]
        current = candidates[-1] if candidates else None
    retired = tuple(
        (by_api_key[api], after) for api, after in retired_after.items() if api in by_api_key
    )
    retired_keys = {k.api_key for k, _ in retired}
    stale = tuple(k for k in named if k is not current and k.api_key not in retired_keys)
    generations = [_generation_of(k) for k in named]
    if record:
        generations += [record.generation] + [p.generation for p in record.previous]
    return _Generations(current, stale, retired, max(generations, default=0))


def _diff_key(
    key: DesiredKey,
    email: str,
    live_keys: tuple[LiveKey, ...],
    record: KeyRecord | None,
    now: datetime,
) -> tuple[list[Action], set[str]]:
    gens = _generations(key, live_keys, record)
    actions: list[Action] = []
    current = gens.current
    if current is None:
        actions.append(_create(key, email, gens.highest + 1))
    else:
        recorded = record if record and record.api_key == current.api_key else None
        actions += _permission_update(key, email, current, recorded)
        actions += _ip_update(key, email, current, recorded)
        rotation = _rotation(key, email, current, recorded, gens.highest + 1, now)
        if rotation:
            actions.append(rotation)
    for stale in gens.stale:
        reason = f"superseded generation g{_generation_of(stale)} of {key.label}"
        actions.append(_delete(key.subaccount, email, stale, reason, key.label))
    for retired, delete_after in gens.retired:
        if delete_after <= now:
            reason = f"rotated out, grace ended {_ago(now - delete_after)} ago"
            actions.append(_delete(key.subaccount, email, retired, reason, key.label))
    claimed = {k.api_key for k in gens.stale} | {k.api_key for k, _ in gens.retired}
    if current is not None:
        claimed.add(current.api_key)
    return actions, claimed


def _create(key: DesiredKey, email: str | None, generation: int) -> CreateKey:
    return CreateKey(
        subaccount=key.subaccount,
        label=key.label,
        email=email,
        api_name=api_name(key.label, generation),
        generation=generation,
        permissions=key.permissions,
        ips=key.ips,
        key_type=key.key_type,
        sink=key.sink,
        verify=key.verify,
        reason="not live",
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
        api_name=api_name(key.label, generation),
        generation=generation,
        permissions=key.permissions,
        ips=key.ips,
        key_type=key.key_type,
        sink=key.sink,
        grace_s=key.grace.total_seconds(),
        verify=key.verify,
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
    reason = f"age {_ago(now - created)} > rotate_after {_ago(key.rotate_after)}"
    return _rotate_action(key, email, current, generation, reason)


def _leftovers(
    sub: DesiredSubaccount, email: str, leftovers: list[LiveKey], records: dict[str, KeyRecord]
) -> tuple[list[Action], list[Finding]]:
    actions: list[Action] = []
    findings: list[Finding] = []
    for key in sorted(leftovers, key=lambda k: (k.api_name, k.api_key)):
        if sub.prune:
            actions.append(_delete(sub.name, email, key, "not in plan (prune)", None))
            continue
        was = _label_of(key)
        note = f" (was managed as {was}; removed from the plan)" if was in records else ""
        findings.append(
            Finding(
                kind="unmanaged",
                address=f"{sub.name}/{key.api_name}",
                message=f"not in plan, not deleted (set prune: true){note}",
                severity=Severity.HIGH,
                api_key=key.api_key,
                fix=f"add it to the plan and `orchestrator import`, or set prune: true on {sub.name}",
            )
        )
    return actions, findings


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
    """Sub-accounts first, then changes to existing keys, frees of unplanned keys, creates,
    rotations, and deletes of our own superseded keys last."""
    match action:
        case CreateSubaccount():
            return 0
        case UpdatePermissions() | UpdateIps():
            return 1
        case DeleteKey(label=None):
            return 2
        case CreateKey():
            return 3
        case Rotate():
            return 4
        case DeleteKey():
            return 5


@lru_cache(maxsize=65_536)
def _parsed(name: str) -> tuple[str, int] | None:
    """parse_api_name, memoized: each live key's name is looked at once per desired key."""
    return parse_api_name(name)


def _label_of(key: LiveKey) -> str | None:
    parsed = _parsed(key.api_name)
    return parsed[0] if parsed else None


def _generation_of(key: LiveKey) -> int:
    parsed = _parsed(key.api_name)
    return parsed[1] if parsed else 0


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
    """A duration as the plan file writes it: 34d, 5h, 12m, 40s."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def current_keys(desired: Desired, live: Live, prior: State | None) -> dict[str, LiveKey]:
    """The live key the diff treats as current for each planned address (`sub/label`)."""
    found: dict[str, LiveKey] = {}
    for sub in desired.subaccounts:
        email = resolve_email(sub, live, prior)
        if email is None:
            continue
        records = _records_of(prior, sub.name)
        live_keys = live.keys.get(email, ())
        for key in sub.keys:
            elsewhere = _recorded_keys(records, key.label)
            others = [k for k in live_keys if k.api_key not in elsewhere]
            current = _generations(key, others, records.get(key.label)).current
            if current is not None:
                found[key.address] = current
    return found


def forced_rotation(
    desired: Desired, live: Live, prior: State | None, address: str
) -> Rotate | None:
    """A rotation of the planned key at `address` now, whatever its age (`rotate --label`);
    None when it has no live key."""
    for sub in desired.subaccounts:
        for key in sub.keys:
            if key.address != address:
                continue
            email = resolve_email(sub, live, prior)
            if email is None:
                return None
            records = _records_of(prior, sub.name)
            others = [
                k
                for k in live.keys.get(email, ())
                if k.api_key not in _recorded_keys(records, key.label)
            ]
            gens = _generations(key, others, records.get(key.label))
            if gens.current is None:
                return None
            return _rotate_action(key, email, gens.current, gens.highest + 1, "rotation requested")
    return None
