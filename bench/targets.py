"""The benchmark's targets, checked against one run's results: each is recorded in
results.json with what was measured and whether it passed.

- apply from empty within 1.05 x the true floor and 1.03 x the peer's wall time on the large
  fixtures (250 x 4, 500 x 6);
- no 429 and no failed (aborted) run for any of our operations, the loaded scenario included;
- calls equal to the fixture's minimum for every one of our operations;
- plan with no changes within 1.05 x the true floor (on the same large fixtures);
- diff plus render of 10,000 keys under 0.3 s, loading and validating a 10,000-key plan under
  1 s, `orchestrator --help` under 0.2 s.

The SDK loop is a reference row, not a target.
"""

from __future__ import annotations

from typing import Any

#: fixtures held to the floor and peer ratios (for small ones the floor is mostly start-up)
RATIO_FIXTURES = ("250x4", "500x6")
LIMITS = {
    "apply_over_true_floor": 1.05,
    "apply_over_peer": 1.03,
    "plan_no_changes_over_true_floor": 1.05,
    "rate_limited_429": 0,
    "diff_render_s": 0.3,
    "plan_load_10k_s": 1.0,
    "help_s": 0.2,
}
OURS = ("plan (from scratch)", "apply (from empty)", "plan (no changes)")


def _row(name: str, where: str, measured: Any, limit: Any, passed: bool) -> dict:
    return {"target": name, "where": where, "measured": measured, "limit": limit, "pass": passed}


def _ours(operation: str) -> bool:
    return operation.startswith(OURS)


def evaluate(results: dict) -> list[dict]:
    """One row per target and place it applies to."""
    rows: list[dict] = []
    scenarios = [*results["fixtures"], *([results["loaded"]] if results.get("loaded") else [])]
    for fx in scenarios:
        loaded = fx is results.get("loaded")
        where = f"{fx['fixture']}{' loaded' if loaded else ''}"
        for op in fx["operations"]:
            if not _ours(op["operation"]):
                continue
            at = f"{where}: {op['operation']}"
            rows.append(_row("completed", at, op["exit_code"], "0 or 2", op["completed"]))
            n429 = op["rate_limited_429"]
            rows.append(_row("rate_limited_429", at, n429, 0, n429 == 0))
            rows.append(
                _row(
                    "calls_equal_minimum",
                    at,
                    op["calls_total"],
                    op.get("minimum_total"),
                    bool(op.get("calls_equal_minimum")),
                )
            )
            if op["operation"] == "plan (no changes)" and fx["fixture"] in RATIO_FIXTURES:
                rows.append(_ratio("plan_no_changes_over_true_floor", at, op))
        if loaded or fx["fixture"] not in RATIO_FIXTURES:
            continue
        apply = next(op for op in fx["operations"] if op["operation"] == "apply (from empty)")
        rows.append(_ratio("apply_over_true_floor", f"{where}: apply (from empty)", apply))
        peer = fx["ours_wall_over_peer"]["apply_over_peer_create"]
        limit = LIMITS["apply_over_peer"]
        rows.append(_row("apply_over_peer", f"{where}: apply / peer", peer, limit, peer <= limit))
    rows += _local(results)
    return rows


def _ratio(name: str, where: str, op: dict) -> dict:
    measured = op["wall_over_true_floor"]
    limit = LIMITS[name]
    return _row(name, where, measured, limit, measured is not None and measured <= limit)


def _local(results: dict) -> list[dict]:
    measured = {
        "diff_render_s": ("10,000 keys, worst case", results["diff_render"]["worst_cpu_s"]),
        "plan_load_10k_s": ("10,000 keys", results["plan_load"]["median_s"]),
        "help_s": ("orchestrator --help", results["cold_start"]["orchestrator --help"]["median_s"]),
    }
    return [
        _row(name, where, value, LIMITS[name], value < LIMITS[name])
        for name, (where, value) in measured.items()
    ]
