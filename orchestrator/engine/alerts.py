"""The events a run sends its notification targets, read from what the run saw and did.

Signs of compromise are what the plan and the audit already call so: a permission or IP
granted outside the plan (`widened`), withdrawals enabled on a key or on the master key, and
a key in a sub-account the plan manages that the orchestrator did not name (nobody declared
it, whether prune deletes it or not). A key of a label removed from the plan is not one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from orchestrator.domain.naming import parse_key_name
from orchestrator.engine.changeset import Changeset, DeleteKey, Finding, Severity
from orchestrator.notify import Alert, AuditFindings, CommandFailed, PossibleCompromise

COMPROMISE_KINDS = frozenset({"widened", "withdrawals", "master_withdrawals"})


def is_compromise(finding: Finding, managed: Collection[str]) -> bool:
    """Whether an audit or plan finding is a sign of compromise; `managed`: the plan's
    sub-account names."""
    if finding.kind in COMPROMISE_KINDS:
        return True
    subaccount, _, api_name = finding.address.partition("/")
    return finding.kind == "unmanaged" and subaccount in managed and _unnamed(api_name)


def compromise_in(changeset: Changeset, managed: Collection[str], command: str):
    """The PossibleCompromise event for what `changeset` shows, or None."""
    signs = [
        Alert(Severity.CRITICAL.value, action.address, action.reason)
        for action in changeset.actions
        if action.security
    ]
    signs += [
        Alert(Severity.HIGH.value, action.address, f"key nobody planned: {action.reason}")
        for action in changeset.actions
        if isinstance(action, DeleteKey) and action.label is None and _unnamed(action.api_name)
    ]
    signs += [_alert(f) for f in changeset.findings if is_compromise(f, managed)]
    return PossibleCompromise(command, tuple(signs)) if signs else None


def audit_findings(found: Sequence[Finding], managed: Collection[str], level: str):
    """The AuditFindings event for findings at or above `level` and every sign of compromise,
    or None when there is none."""
    threshold = Severity(level).rank
    compromise = [f for f in found if is_compromise(f, managed)]
    worth = [f for f in found if f.severity.rank >= threshold or f in compromise]
    if not worth:
        return None
    return AuditFindings(level, tuple(_alert(f) for f in worth), compromise=bool(compromise))


def failed_actions(command: str, results: Iterable) -> CommandFailed | None:
    """The CommandFailed event for the actions of a run that failed, or None."""
    results = list(results)
    failed = [r for r in results if not r.ok]
    if not failed:
        return None
    return CommandFailed(
        command,
        f"{len(failed)} of {len(results)} action(s) failed",
        tuple(f"{r.action.address}: {r.message}" for r in failed),
    )


def stopped(command: str, exc: BaseException) -> CommandFailed:
    """The CommandFailed event for a run that stopped with `exc`. Its message is written for
    the user and holds no secret; a plan's problems come one per line."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return CommandFailed(command, f"stopped with {type(exc).__name__}")
    return CommandFailed(command, lines[0], tuple(lines[1:]))


def _alert(finding: Finding) -> Alert:
    return Alert(finding.severity.value, finding.address, finding.message)


def _unnamed(api_name: str) -> bool:
    return parse_key_name(api_name) is None
