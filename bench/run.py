"""`make bench`: what a plan or an apply costs in calls and wall time, against the emulator.

For each fixture (sub-accounts x keys) one emulator (`orchestrator emulator serve` with
Binance's weights and budgets, --time-scale 60, --latency-ms 20) serves, in order:
plan from scratch, apply from empty, plan with no changes (the real CLI, as subprocesses),
then the same refresh and creation by a serial loop over Binance's official SDK. Then the
local CPU figures. Prints a table and writes bench/results.json. See bench/README.md.

    python bench/run.py [--fixtures 1x5,50x4,250x4] [--skip-sdk]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu  # noqa: E402
from emu import EmulatorProcess  # noqa: E402
from fixture import Fixture  # noqa: E402
from ops import run_cli, run_sdk  # noqa: E402

TIME_SCALE = 60.0
LATENCY_MS = 20.0
FIXTURES = {"1x5": Fixture(1, 5), "50x4": Fixture(50, 4), "250x4": Fixture(250, 4)}
RESULTS = Path(__file__).resolve().parent / "results.json"
TARGETS = {"wall_over_floor": 1.15, "sdk_ratio": 3.0, "diff_render_s": 0.5, "help_s": 0.3}


def bench_fixture(fixture: Fixture, with_sdk: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{fixture.name}-"))
    emulator = EmulatorProcess(tmp / "emulator.json", time_scale=TIME_SCALE, latency_ms=LATENCY_MS)
    window = emulator.window_s
    started = time.perf_counter()
    try:
        emulator.add_subaccounts(fixture.emails())
        project = tmp / "project"
        fixture.write_project(project, emulator.url, window)
        plan_scratch, _ = run_cli(
            emulator,
            project,
            ["plan", "--json"],
            "plan (from scratch)",
            fixture.minimum_plan_scratch(),
        )
        apply, _ = run_cli(
            emulator,
            project,
            ["apply", "--auto-approve"],
            "apply (from empty)",
            fixture.minimum_apply_scratch(),
        )
        plan_same, _ = run_cli(
            emulator,
            project,
            ["plan", "--json"],
            "plan (no changes)",
            fixture.minimum_plan_unchanged(),
        )
        ops = [plan_scratch, apply, plan_same]
        sdk = {}
        if with_sdk:
            sdk_refresh = run_sdk(
                emulator, "refresh", "SDK loop: refresh", fixture.minimum_plan_unchanged()
            )
            sdk_emails = fixture.emails("sdk")
            emulator.add_subaccounts(sdk_emails)
            sdk_create = run_sdk(
                emulator,
                "create",
                "SDK loop: create keys",
                {"create_api_key": fixture.total_keys},
                [str(fixture.keys), *sdk_emails],
            )
            ops += [sdk_refresh, sdk_create]
            sdk = {
                "refresh_ratio": round(sdk_refresh.wall_s / plan_same.wall_s, 3),
                "create_ratio": round(sdk_create.wall_s / apply.wall_s, 3),
            }
    finally:
        emulator.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "fixture": fixture.name,
        "subaccounts": fixture.subaccounts,
        "keys": fixture.total_keys,
        "window_s": window,
        "operations": [op.to_json(window) for op in ops],
        "sdk_wall_over_ours": sdk,
        "fixture_duration_s": round(time.perf_counter() - started, 1),
    }


def machine() -> dict:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or _cpu_model(),
        "cpus": os.cpu_count(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def print_table(results: dict) -> None:
    head = (
        f"{'fixture':<7} {'operation':<22} {'calls':>6} {'min':>6} {'429':>4} "
        f"{'wall s':>7} {'floor s':>7} {'x floor':>7}  calls per endpoint"
    )
    print(head)
    print("-" * len(head))
    for fx in results["fixtures"]:
        for op in fx["operations"]:
            per = ", ".join(f"{k} {v}" for k, v in op["calls"].items())
            ratio = f"{op['wall_over_floor']:.2f}" if op["wall_over_floor"] else "-"
            print(
                f"{fx['fixture']:<7} {op['operation']:<22} {op['calls_total']:>6} "
                f"{op.get('minimum_total', '-'):>6} {op['rate_limited_429']:>4} "
                f"{op['wall_s']:>7.2f} {op['floor_s']:>7.2f} {ratio:>7}  {per}"
            )
        if fx["sdk_wall_over_ours"]:
            s = fx["sdk_wall_over_ours"]
            print(
                f"{'':<7} SDK loop wall / ours: refresh {s['refresh_ratio']:.2f}x, "
                f"creation {s['create_ratio']:.2f}x"
            )
    dr = results["diff_render"]
    print(
        f"\ndiff + render, {dr['keys']} keys (CPU s, median): "
        + ", ".join(f"{k} {v['cpu_s']:.3f}" for k, v in dr.items() if isinstance(v, dict))
    )
    print(
        "cold start (median s): "
        + ", ".join(f"{k} {v['median_s']:.3f}" for k, v in results["cold_start"].items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", default=",".join(FIXTURES))
    parser.add_argument("--skip-sdk", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "time_scale": TIME_SCALE,
            "latency_ms": LATENCY_MS,
            "window_s": 60.0 / TIME_SCALE,
            "targets": TARGETS,
        },
        "fixtures": [],
    }
    for name in args.fixtures.split(","):
        print(f"... fixture {name}", file=sys.stderr, flush=True)
        results["fixtures"].append(bench_fixture(FIXTURES[name], not args.skip_sdk))
    print("... diff + render, cold start", file=sys.stderr, flush=True)
    results["diff_render"] = cpu.diff_render()
    results["cold_start"] = cpu.cold_start()
    results["duration_s"] = round(time.perf_counter() - started, 1)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {RESULTS} in {results['duration_s']} s")


if __name__ == "__main__":
    main()
