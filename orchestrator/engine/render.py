"""Plan output for people and for machines (`--json`)."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.domain.permissions import Permission
from orchestrator.engine.changeset import (
    Action,
    Changeset,
    CreateKey,
    CreateSubaccount,
    DeleteKey,
    Finding,
    Reconcile,
    Rename,
    Rotate,
    UpdateIps,
    UpdatePermissions,
)


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


#: (permission, its name) in the enum's order, without iterating the enum for every line
_PERMISSIONS = tuple((p, p.value) for p in Permission)


def describe(action: Action) -> str:
    """What an action does, in the words of the plan output's last column."""
    match action:
        case CreateSubaccount(virtual=virtual):
            return f"virtual sub-account {virtual}"
        case CreateKey():
            granted = action.permissions
            perms = ", ".join(["read"] + [value for p, value in _PERMISSIONS if p in granted])
            ips = f"ips {', '.join(action.ips)}" if action.ips else "no IP whitelist"
            return f"{perms}; {ips}; {action.key_type} as {action.api_name}"
        case _:
            return action.reason


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
        return "No changes. Live keys match the plan."
    c = changeset.counts()
    return (
        f"Plan: {c['create']} to create, {c['update']} to update, "
        f"{c['rotate']} to rotate, {c['delete']} to delete."
    )


def plan_json(changeset: Changeset, calls: Mapping[str, int]) -> dict:
    """The machine-readable plan: actions, findings, counts, and calls made per endpoint."""
    return {
        "plan": changeset.plan_name,
        "changes": changeset.has_changes,
        "summary": changeset.counts(),
        "actions": [{**a.to_dict(), "description": describe(a)} for a in changeset.actions],
        "findings": [f.to_dict() for f in changeset.findings],
        "calls": dict(sorted(calls.items())),
        "calls_total": sum(calls.values()),
        "live_fingerprint": changeset.live_fingerprint,
        "state_serial": changeset.state_serial,
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
