"""Timing one orchestrator command (or SDK loop) against the emulator, with the calls it made."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from emu import EmulatorProcess, master_env
from fixture import floor_s, true_floor_s, weighted

BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class Measured:
    operation: str
    wall_s: float
    calls: dict[str, int]  # counted by the emulator, weighted endpoints only
    rate_limited: int
    minimum: dict[str, int] | None = None
    client_calls: dict[str, int] | None = None  # as reported by `plan --json`
    server_time_calls: int = 0
    extra: dict = field(default_factory=dict)

    def to_json(self, window_s: float, latency_s: float) -> dict:
        floor, bound_by = floor_s(self.calls, window_s)
        windows, true_floor = true_floor_s(self.minimum or self.calls, window_s, latency_s)
        data = {
            "operation": self.operation,
            "wall_s": round(self.wall_s, 3),
            "calls": self.calls,
            "calls_total": sum(self.calls.values()),
            "rate_limited_429": self.rate_limited,
            "floor_s": round(floor, 3),
            "floor_bound_by": bound_by,
            "wall_over_floor": round(self.wall_s / floor, 3) if floor else None,
            "server_time_calls": self.server_time_calls,
            "windows_needed": windows,
            "true_floor_s": round(true_floor, 3),
            "wall_over_true_floor": round(self.wall_s / true_floor, 3) if true_floor else None,
        }
        if self.minimum is not None:
            data["minimum"] = self.minimum
            data["minimum_total"] = sum(self.minimum.values())
            data["calls_equal_minimum"] = self.calls == self.minimum
            min_floor, _ = floor_s(self.minimum, window_s)
            data["minimum_floor_s"] = round(min_floor, 3)
        if self.client_calls is not None:
            data["client_reported_calls"] = self.client_calls
        data.update(self.extra)
        return data


def _server_side(emulator: EmulatorProcess) -> tuple[dict[str, int], int, int]:
    stats = emulator.take_stats()
    calls = weighted(stats["calls"])
    return calls, stats["rate_limited_total"], stats["calls"].get("server_time", 0)


def run_cli(
    emulator: EmulatorProcess,
    project: Path,
    args: list[str],
    operation: str,
    minimum: dict[str, int],
    env: dict[str, str] | None = None,
) -> tuple[Measured, str]:
    emulator.wait_fresh_window()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=project,
        env=env or master_env(),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    completed = result.returncode in (0, 2)  # 2: `plan` found changes
    if not completed:
        print(
            f"orchestrator {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}",
            file=sys.stderr,
        )
    calls, limited, server_time = _server_side(emulator)
    client_calls = None
    if "--json" in args and completed:
        client_calls = weighted(_reported_calls(json.loads(result.stdout)))
    extra = {"exit_code": result.returncode, "completed": completed}
    measured = Measured(operation, wall, calls, limited, minimum, client_calls, server_time, extra)
    return measured, result.stdout


def _reported_calls(report: dict) -> dict[str, int]:
    """The calls `plan --json` reports, summed over its accounts when it has several."""
    if "accounts" not in report:
        return report["calls"]
    total: dict[str, int] = {}
    for entry in report["accounts"]:
        for name, n in entry["calls"].items():
            total[name] = total.get(name, 0) + n
    return total


def run_sdk(
    emulator: EmulatorProcess,
    mode: str,
    operation: str,
    minimum: dict[str, int],
    extra_args: list[str] = (),
) -> Measured:
    """A serial loop over Binance's official SDK (bench/sdk_loop.py)."""
    args = [mode, emulator.url, str(emulator.time_scale), *extra_args]
    return _run_script("sdk_loop.py", emulator, args, operation, minimum)


def run_peer(
    emulator: EmulatorProcess,
    mode: str,
    operation: str,
    minimum: dict[str, int],
    extra_args: list[str] = (),
) -> Measured:
    """The hand-written asyncio peer (bench/peer.py)."""
    args = [mode, emulator.url, str(emulator.window_s), *extra_args]
    return _run_script("peer.py", emulator, args, operation, minimum)


def _run_script(
    script: str,
    emulator: EmulatorProcess,
    args: list[str],
    operation: str,
    minimum: dict[str, int],
) -> Measured:
    emulator.wait_fresh_window()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(BENCH_DIR / script), *args],
        env=master_env(),
        capture_output=True,
        text=True,
        cwd=BENCH_DIR,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{script} {args[0]} failed:\n{result.stderr[-4000:]}")
    calls, limited, server_time = _server_side(emulator)
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    return Measured(
        operation,
        wall,
        calls,
        limited,
        minimum,
        None,
        server_time,
        extra={"keys_seen": reported["keys"]},
    )
