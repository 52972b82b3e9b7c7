"""`make bench`: what a plan or an apply costs in calls and wall time, against the emulator.

For each fixture (sub-accounts x keys) one emulator (`orchestrator emulator serve` with
Binance's weights and budgets, --time-scale 60, --latency-ms 20) serves, in order:
plan from scratch, apply from empty, plan with no changes (the real CLI, as subprocesses),
then the same refresh and creation by the hand-written asyncio peer (bench/peer.py) and by a
serial loop over Binance's official SDK. Then the loaded-machine scenario: apply from empty
and the peer's creation again, on a fresh emulator, with a CPU burner on one core. Then the
local figures. Then two master accounts of the `--accounts-fixture` fixture each in one
plan (an emulator with a second master), beside one account alone: plan from scratch, apply
from empty, plan with no changes. Prints a table and the targets (bench/targets.py), each
passed or failed, and writes bench/results.json. See bench/README.md.

    python bench/run.py [--fixtures 1x5,50x4,250x4] [--load-fixture 250x4] [--skip-sdk]
                        [--accounts-fixture 250x4]

BENCH_LARGE=1 adds the 500 x 6 fixture (3,000 keys, about six more minutes).
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
import targets  # noqa: E402
from emu import EmulatorProcess, master_env  # noqa: E402
from fixture import Fixture  # noqa: E402
from load import CpuBurner  # noqa: E402
from ops import Measured, run_cli, run_peer, run_sdk  # noqa: E402

TIME_SCALE = 60.0
LATENCY_MS = 20.0
FIXTURES = {"1x5": Fixture(1, 5), "50x4": Fixture(50, 4), "250x4": Fixture(250, 4)}
LARGE_FIXTURES = {"500x6": Fixture(500, 6)}
ALL_FIXTURES = {**FIXTURES, **LARGE_FIXTURES}
DEFAULT_FIXTURES = [*FIXTURES, *(LARGE_FIXTURES if os.environ.get("BENCH_LARGE") else ())]
#: the burner's own deadline, in case the benchmark dies before it stops it
BURNER_MAX_S = 300.0
RESULTS = Path(__file__).resolve().parent / "results.json"


def _peer_create(emulator: EmulatorProcess, fixture: Fixture, tmp: Path, label: str) -> Measured:
    """The peer creates the fixture's keys on sub-accounts of its own, empty ones."""
    emails = fixture.emails("peer")
    emulator.add_subaccounts(emails)
    minimum = {k: v for k, v in fixture.minimum_apply_scratch().items() if k != "list_subaccounts"}
    args = [str(tmp / "peer-keys"), str(fixture.keys), *emails]
    return run_peer(emulator, "create", label, minimum, args)


def _ratio(a: Measured, b: Measured) -> float:
    return round(a.wall_s / b.wall_s, 3)


def bench_fixture(fixture: Fixture, with_sdk: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{fixture.name}-"))
    emulator = EmulatorProcess(tmp / "emulator.json", time_scale=TIME_SCALE, latency_ms=LATENCY_MS)
    window = emulator.window_s
    started = time.perf_counter()
    load_before = _load_average()
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
        peer_refresh = run_peer(
            emulator, "refresh", "peer: refresh", fixture.minimum_plan_unchanged()
        )
        ops = [plan_scratch, apply, plan_same, peer_refresh]
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
        peer_create = _peer_create(emulator, fixture, tmp, "peer: create keys")
        ops.append(peer_create)
        ours_over_peer = {
            "apply_over_peer_create": _ratio(apply, peer_create),
            "plan_over_peer_refresh": _ratio(plan_same, peer_refresh),
        }
    finally:
        emulator.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "fixture": fixture.name,
        "subaccounts": fixture.subaccounts,
        "keys": fixture.total_keys,
        "window_s": window,
        "operations": [op.to_json(window, LATENCY_MS / 1000) for op in ops],
        "ours_wall_over_peer": ours_over_peer,
        "sdk_wall_over_ours": sdk,
        "fixture_duration_s": round(time.perf_counter() - started, 1),
        "load_average": {"before": load_before, "after": _load_average()},
    }


def bench_loaded(fixture: Fixture) -> dict:
    """Apply from empty, then the peer's creation, with a CPU burner on one core throughout."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-loaded-{fixture.name}-"))
    emulator = EmulatorProcess(tmp / "emulator.json", time_scale=TIME_SCALE, latency_ms=LATENCY_MS)
    window = emulator.window_s
    started = time.perf_counter()
    load_before = _load_average()
    try:
        emulator.add_subaccounts(fixture.emails())
        project = tmp / "project"
        fixture.write_project(project, emulator.url, window)
        with CpuBurner(BURNER_MAX_S) as burner:
            apply, _ = run_cli(
                emulator,
                project,
                ["apply", "--auto-approve"],
                "apply (from empty), loaded",
                fixture.minimum_apply_scratch(),
            )
            peer_create = _peer_create(emulator, fixture, tmp, "peer: create keys, loaded")
    finally:
        emulator.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "fixture": fixture.name,
        "subaccounts": fixture.subaccounts,
        "keys": fixture.total_keys,
        "window_s": window,
        "burner": {"cpu": burner.cpu, "cpu_s": burner.cpu_s},
        "operations": [op.to_json(window, LATENCY_MS / 1000) for op in (apply, peer_create)],
        "ours_wall_over_peer": {"apply_over_peer_create": _ratio(apply, peer_create)},
        "fixture_duration_s": round(time.perf_counter() - started, 1),
        "load_average": {"before": load_before, "after": _load_average()},
    }


#: the two master accounts of the accounts scenario: (name, key variable, secret variable,
#: email prefix); the first reads the master the emulator took from BINANCE_*.
TWO_ACCOUNTS = (
    ("main", "BINANCE_API_KEY", "BINANCE_API_SECRET", "main"),
    ("fund2", "FUND2_API_KEY", "FUND2_API_SECRET", "fund"),
)


def bench_accounts(fixture: Fixture) -> dict:
    """One account alone, then two accounts of `fixture` each in one plan, on one emulator:
    their budgets are per account, so two take about one account's time."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-accounts-{fixture.name}-"))
    emulator = EmulatorProcess(
        tmp / "emulator.json", time_scale=TIME_SCALE, latency_ms=LATENCY_MS, masters=("fund2",)
    )
    window = emulator.window_s
    started = time.perf_counter()
    try:
        fund2_key, fund2_secret = emulator.master_credentials("fund2")
        env = {**master_env(), "FUND2_API_KEY": fund2_key, "FUND2_API_SECRET": fund2_secret}
        emulator.add_subaccounts(fixture.emails("one"))
        emulator.add_subaccounts(fixture.emails("main"))
        emulator.add_subaccounts(fixture.emails("fund"), master="fund2")
        one, two = tmp / "one", tmp / "two"
        fixture.write_project(one, emulator.url, window, prefix="one")
        fixture.write_project(two, emulator.url, window, accounts=TWO_ACCOUNTS)
        ops = []
        for project, who in ((one, "1 account"), (two, "2 accounts")):
            for args, what, minimum in (
                (["plan", "--json"], "plan (from scratch)", fixture.minimum_plan_scratch()),
                (
                    ["apply", "--auto-approve"],
                    "apply (from empty)",
                    fixture.minimum_apply_scratch(),
                ),
                (["plan", "--json"], "plan (no changes)", fixture.minimum_plan_unchanged()),
            ):
                # the minimum is one account's: each account has budgets of its own
                measured, _ = run_cli(emulator, project, args, f"{who}: {what}", minimum, env)
                ops.append(measured)
    finally:
        emulator.close()
        shutil.rmtree(tmp, ignore_errors=True)
    half = len(ops) // 2
    return {
        "fixture": f"2x{fixture.name}",
        "subaccounts": 2 * fixture.subaccounts,
        "keys": 2 * fixture.total_keys,
        "window_s": window,
        "operations": [op.to_json(window, LATENCY_MS / 1000) for op in ops],
        "two_accounts_wall_over_one": {
            one.operation.removeprefix("1 account: "): _ratio(two, one)
            for one, two in zip(ops[:half], ops[half:], strict=True)
        },
        "fixture_duration_s": round(time.perf_counter() - started, 1),
    }


def _load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: absolute times depend on what else runs."""
    return [round(x, 2) for x in os.getloadavg()]


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
        f"{'fixture':<7} {'operation':<28} {'calls':>6} {'min':>6} {'429':>4} "
        f"{'wall s':>7} {'floor s':>7} {'x floor':>7} {'win':>4} {'true fl':>7} {'x true':>6}"
        "  calls per endpoint"
    )
    print(head)
    print("-" * len(head))
    extra = [results[name] for name in ("loaded", "accounts") if results.get(name)]
    for fx in [*results["fixtures"], *extra]:
        for op in fx["operations"]:
            per = ", ".join(f"{k} {v}" for k, v in op["calls"].items())
            ratio = f"{op['wall_over_floor']:.2f}" if op["wall_over_floor"] else "-"
            true = f"{op['wall_over_true_floor']:.2f}" if op["wall_over_true_floor"] else "-"
            print(
                f"{fx['fixture']:<7} {op['operation']:<28} {op['calls_total']:>6} "
                f"{op.get('minimum_total', '-'):>6} {op['rate_limited_429']:>4} "
                f"{op['wall_s']:>7.2f} {op['floor_s']:>7.2f} {ratio:>7} "
                f"{op['windows_needed']:>4} {op['true_floor_s']:>7.2f} {true:>6}  {per}"
            )
        if fx.get("ours_wall_over_peer"):
            print(
                f"{'':<7} ours wall / peer: "
                + ", ".join(f"{k} {v:.2f}x" for k, v in fx["ours_wall_over_peer"].items())
            )
        if fx.get("two_accounts_wall_over_one"):
            print(
                f"{'':<7} 2 accounts wall / 1 account: "
                + ", ".join(f"{k} {v:.2f}x" for k, v in fx["two_accounts_wall_over_one"].items())
            )
        if fx.get("load_average"):
            la = fx["load_average"]
            print(f"{'':<7} load average before {la['before']}, after {la['after']}")
        if fx.get("burner"):
            b = fx["burner"]
            print(f"{'':<7} loaded: CPU burner on cpu {b['cpu']}, {b['cpu_s']} CPU s")
        if fx.get("sdk_wall_over_ours"):
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
        f"plan load, {results['plan_load']['keys']} keys (median s): "
        f"{results['plan_load']['median_s']:.3f}"
    )
    print(
        "cold start (median s): "
        + ", ".join(f"{k} {v['median_s']:.3f}" for k, v in results["cold_start"].items())
    )
    print(f"load average at the end (1, 5, 15 min): {results['load_average']}")
    print("\ntargets:")
    for row in results["targets"]:
        mark = "pass" if row["pass"] else "FAIL"
        print(
            f"  {mark}  {row['target']:<32} {row['where']:<44} {row['measured']} (limit {row['limit']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", default=",".join(DEFAULT_FIXTURES))
    parser.add_argument(
        "--load-fixture", default="250x4", help="fixture of the loaded-machine scenario ('' skips)"
    )
    parser.add_argument("--skip-sdk", action="store_true")
    parser.add_argument(
        "--accounts-fixture",
        default="250x4",
        help="fixture of each of the two master accounts in the accounts scenario ('' skips)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "time_scale": TIME_SCALE,
            "latency_ms": LATENCY_MS,
            "window_s": 60.0 / TIME_SCALE,
            "targets": targets.LIMITS,
        },
        "fixtures": [],
    }
    for name in args.fixtures.split(","):
        print(f"... fixture {name}", file=sys.stderr, flush=True)
        results["fixtures"].append(bench_fixture(ALL_FIXTURES[name], not args.skip_sdk))
    if args.load_fixture:
        print(f"... loaded machine, fixture {args.load_fixture}", file=sys.stderr, flush=True)
        results["loaded"] = bench_loaded(ALL_FIXTURES[args.load_fixture])
    if args.accounts_fixture:
        print(f"... two accounts, 2 x {args.accounts_fixture}", file=sys.stderr, flush=True)
        results["accounts"] = bench_accounts(ALL_FIXTURES[args.accounts_fixture])
    print("... diff + render, plan load, cold start", file=sys.stderr, flush=True)
    results["diff_render"] = cpu.diff_render()
    results["plan_load"] = cpu.plan_load()
    results["cold_start"] = cpu.cold_start()
    results["load_average"] = _load_average()
    results["targets"] = targets.evaluate(results)
    results["all_targets_pass"] = all(row["pass"] for row in results["targets"])
    results["duration_s"] = round(time.perf_counter() - started, 1)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {RESULTS} in {results['duration_s']} s")


if __name__ == "__main__":
    main()
