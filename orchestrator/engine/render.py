"""Plan output for people and for machines (`--json`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.domain.naming import parse_key_name
from orchestrator.domain.permissions import Permission
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
    UpdateIps,
    UpdatePermissions,
)
from orchestrator.sinks import key_material_location


def _symbol(action: Action) -> tuple[str, str, str]:
    """(symbol, verb, style) of the plan line."""
    match action:
        case CreateSubaccount() | CreateKey():
            return "  +", "create", "green"
        case UpdatePermissions() | UpdateIps():
            return "  ~", "update", "yellow"
        case Rotate():
            return "-/+", "rotate", "cyan"
        case DeleteKey():
            return "  -", "delete", "red"
        case Reconcile():
            return "  ~", "reconcile", "yellow"
        case Rename():
            return "  ~", "rename", "yellow"
        case Reload():
            return "  ~", "reload", "yellow"
        case MoveMaterial():
            return "  ~", "move", "yellow"


#: (permission, its name) in the enum's order, without iterating the enum for every line
_PERMISSIONS = tuple((p, p.value) for p in Permission)


def describe(action: Action) -> str:
    """What an action does, in the words of the plan output's last column: for a new key,
    where its material will be written; for a deleted generation of a planned key, which."""
    match action:
        case CreateSubaccount(virtual=virtual):
            return f"virtual sub-account {virtual}"
        case CreateKey():
            granted = action.permissions
            perms = ", ".join(["read"] + [value for p, value in _PERMISSIONS if p in granted])
            ips = f"ips {', '.join(action.ips)}" if action.ips else "no IP whitelist"
            return (
                f"{perms}; {ips}; {action.key_type} as {action.api_name}; "
                f"material to {_location(action)}"
            )
        case Rotate():
            return (
                f"{action.reason}; g{action.generation} as {action.api_name}, "
                f"material to {_location(action)}"
            )
        case DeleteKey(label=str()) if (generation := _generation(action.api_name)) is not None:
            return f"g{generation} ({action.api_name}): {action.reason}"
        case _:
            return action.reason


def _location(action: CreateKey | Rotate) -> str:
    return key_material_location(action.sink, action.subaccount, action.label)


def _generation(name: str) -> int | None:
    parsed = parse_key_name(name)
    return parsed.generation if parsed else None


def plan_lines(
    changeset: Changeset, *, color: bool = False, with_summary: bool = True, width: int = 0
) -> list[str]:
    """The plan as text lines; with `color`, rich markup. Addresses are padded to the longest
    one, or to `width` when that is longer (parts of one plan shown apart line up)."""
    rows = [_action_row(a) for a in changeset.actions]
    rows += [_finding_row(f) for f in changeset.findings]
    width = max([width] + [len(addr) for _, _, addr, _, _ in rows])
    lines = []
    for symbol, verb, address, text, style in rows:
        line = f"{symbol} {verb:<8} {address:<{width}}  {text}"
        lines.append(f"[{style}]{_escape(line)}[/{style}]" if color and style else line)
    if not with_summary:
        return lines
    if lines:
        lines.append("")
    lines.append(summary(changeset))
    return lines


def summary(changeset: Changeset) -> str:
    if not changeset.has_changes:
        return _no_changes(changeset)
    c = changeset.counts()
    return (
        f"Plan: {c['create']} to create, {c['update']} to update, "
        f"{c['rotate']} to rotate, {c['delete']} to delete."
    )


def _no_changes(changeset: Changeset) -> str:
    """Nothing to change; but live keys nobody planned are named, the risky ones loudest."""
    risky = len(changeset.risky_unmanaged)
    unmanaged = sum(f.kind == "unmanaged" for f in changeset.findings)
    if risky:
        keys = (
            "key that can trade or move funds is"
            if risky == 1
            else "keys that can trade or move funds are"
        )
        return (
            f"No changes to the planned keys, but {risky} unmanaged {keys} live (above): "
            "delete them, or add them to the plan and `orchestrator import` them."
        )
    if unmanaged:
        return (
            f"No changes. The planned keys match; {unmanaged} live key(s) not in the plan "
            "(above) can only read."
        )
    return "No changes. Live keys match the plan."


def plan_json(changeset: Changeset, calls: Mapping[str, int]) -> dict:
    """The machine-readable plan: actions, findings, counts, and calls made per endpoint."""
    return {
        "plan": changeset.plan_name,
        "changes": changeset.has_changes,
        "summary": changeset.counts(),
        "risky_unmanaged": len(changeset.risky_unmanaged),
        "actions": [{**a.to_dict(), "description": describe(a)} for a in changeset.actions],
        "findings": [f.to_dict() for f in changeset.findings],
        "calls": dict(sorted(calls.items())),
        "calls_total": sum(calls.values()),
        "live_fingerprint": changeset.live_fingerprint,
        "state_serial": changeset.state_serial,
    }


def results_json(changeset: Changeset, results: Sequence) -> dict:
    """What apply or rotate did, for machines: each action of the changeset in plan order
    with its outcome (`ok` and `message`; both None for an action that did not run), the
    findings, the counts planned, and how many were done and failed."""
    outcome = {id(r.action): r for r in results}
    actions = []
    for action in changeset.actions:
        result = outcome.get(id(action))
        actions.append(
            {
                **action.to_dict(),
                "description": describe(action),
                "ok": result.ok if result else None,
                "message": result.message if result else None,
            }
        )
    failed = sum(not r.ok for r in results)
    return {
        "plan": changeset.plan_name,
        "changes": changeset.has_changes,
        "summary": changeset.counts(),
        "actions": actions,
        "findings": [f.to_dict() for f in changeset.findings],
        "done": len(results) - failed,
        "failed": failed,
    }


def _action_row(action: Action) -> tuple[str, str, str, str, str]:
    symbol, verb, style = _symbol(action)
    if action.security:
        style = "bold red"
    return symbol, verb, action.address, describe(action), style


def _finding_row(finding: Finding) -> tuple[str, str, str, str, str]:
    style = "bold red" if finding.severity.rank >= 3 else "magenta"
    verb = finding.kind.replace("_", " ")
    return "  !", verb, finding.address, finding.message, style


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def address_width(desired) -> int:
    """The longest address a plan's changesets can show (`sub/label`, or a sub-account)."""
    return max((len(k.address) for k in desired.keys()), default=0)
