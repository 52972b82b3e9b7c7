"""Local costs, no network: diff plus render of 10,000 keys, loading a 10,000-key plan, and
cold start of the CLI."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from emu import master_env
from fixture import Fixture

DIFF_FIXTURE = Fixture(400, 25)  # 10,000 keys, within the 30-key cap with rotation headroom


def _live(desired, with_keys: bool, drift: bool):
    from orchestrator.domain.model import Live, LiveKey
    from orchestrator.domain.naming import api_name
    from orchestrator.exchange.models import SubAccount

    subs = tuple(SubAccount(email=s.email) for s in desired.subaccounts)
    keys = {}
    for s in desired.subaccounts:
        rows = []
        for n, k in enumerate(s.keys if with_keys else ()):
            ips = k.ips if not (drift and n % 2) else (*k.ips, "198.51.100.99")
            rows.append(
                LiveKey(
                    email=s.email,
                    api_name=api_name(k.label, 1),
                    api_key=f"K{len(rows)}{s.email}",
                    permissions=k.permissions,
                    restricted=bool(ips),
                    ips=tuple(sorted(ips)),
                    created_ms=int(time.time() * 1000),
                )
            )
        keys[s.email] = tuple(rows)
    return Live(subaccounts=subs, keys=keys)


def diff_render(repeats: int = 5) -> dict:
    """Median seconds of diff() + plan_lines() + plan_json() for 10,000 keys, per scenario."""
    from orchestrator.config import load_plan
    from orchestrator.engine.diff import diff
    from orchestrator.engine.render import plan_json, plan_lines

    with tempfile.TemporaryDirectory() as tmp:
        plan = DIFF_FIXTURE.write_project(Path(tmp), "http://127.0.0.1:1", 1.0)
        desired = load_plan(plan).desired
    now = datetime.now(UTC)
    results = {}
    scenarios = {
        "all_create": _live(desired, False, False),
        "no_changes": _live(desired, True, False),
        "half_drifted": _live(desired, True, True),
    }
    for name, live in scenarios.items():
        times, actions = [], 0
        for _ in range(repeats):
            started = time.process_time()
            changeset = diff(desired, live, None, now)
            lines = plan_lines(changeset)
            text = json.dumps(plan_json(changeset, {}))
            times.append(time.process_time() - started)
            actions = len(changeset.actions) + len(changeset.findings)
        results[name] = {
            "cpu_s": round(statistics.median(times), 4),
            "actions_and_findings": actions,
            "lines": len(lines),
            "json_bytes": len(text),
        }
    results["keys"] = DIFF_FIXTURE.total_keys
    results["worst_cpu_s"] = max(v["cpu_s"] for v in results.values() if isinstance(v, dict))
    return results


def plan_load(repeats: int = 5) -> dict:
    """Median wall seconds of loading and validating a plan of 10,000 keys (read, YAML,
    schema, policy, the desired state), in this process (imports excluded)."""
    from orchestrator.config import load_plan

    with tempfile.TemporaryDirectory() as tmp:
        plan = DIFF_FIXTURE.write_project(Path(tmp), "http://127.0.0.1:1", 1.0)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            loaded = load_plan(plan)
            times.append(time.perf_counter() - started)
    return {
        "keys": loaded.key_count,
        "warnings": len(loaded.warnings),
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "runs": repeats,
    }


def cold_start(runs: int = 7) -> dict:
    """Median wall time of a fresh interpreter running `orchestrator --help` / `validate`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        small = Fixture(1, 5).write_project(root / "small", "http://127.0.0.1:1", 1.0)
        large = Fixture(250, 4).write_project(root / "large", "http://127.0.0.1:1", 1.0)
        bin_dir = Path(sys.executable).parent
        commands = {
            "python -m orchestrator --help": [sys.executable, "-m", "orchestrator", "--help"],
            "orchestrator --help": [str(bin_dir / "orchestrator"), "--help"],
            "orchestrator validate (1x5)": [
                sys.executable,
                "-m",
                "orchestrator",
                "validate",
                str(small),
            ],
            "orchestrator validate (250x4)": [
                sys.executable,
                "-m",
                "orchestrator",
                "validate",
                str(large),
            ],
        }
        out = {}
        for name, command in commands.items():
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                subprocess.run(command, env=master_env(), capture_output=True, check=True, cwd=root)
                times.append(time.perf_counter() - started)
            out[name] = {
                "median_s": round(statistics.median(times), 4),
                "min_s": round(min(times), 4),
                "runs": runs,
            }
    return out
