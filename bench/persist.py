"""What an apply costs in durable writes: fsyncs and os.replace per key, wall time, and the
longest stall of the event loop, for this tree and a base revision, in one run.

Each side applies the same plan (N sub-accounts x K ed25519 keys, file sink) from empty
against the built-in sandbox, as `python -m orchestrator apply --auto-approve` in a child
process that wraps os.fsync and os.replace to count them (the sandbox's own data file is
counted apart: it stands in for the exchange) and runs a heartbeat task beside the command
to measure how late the event loop wakes up. The base revision is exported with `git
archive`, so the repository is not touched.

    python bench/persist.py [--subaccounts 100] [--keys 4] [--base main] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: runs in the child: counts, heartbeat, then the CLI as `python -m orchestrator` would
PROBE = textwrap.dedent(
    """
    import asyncio, json, os, runpy, sys, threading, time

    out_path = sys.argv[1]
    counts = {"fsync": 0, "fsync_on_loop": 0, "replace": 0, "replace_on_loop": 0,
              "sandbox_fsync": 0, "sandbox_replace": 0}
    main = threading.main_thread()
    real_fsync, real_replace = os.fsync, os.replace

    def count(name, caller):
        if str(caller.f_globals.get("__name__", "")).startswith("orchestrator.emulator"):
            counts["sandbox_" + name] += 1
            return
        counts[name] += 1
        if threading.current_thread() is main:
            counts[name + "_on_loop"] += 1

    def fsync(fd):
        count("fsync", sys._getframe(1))
        return real_fsync(fd)

    def replace(src, dst, *args, **kwargs):
        count("replace", sys._getframe(1))
        return real_replace(src, dst, *args, **kwargs)

    os.fsync, os.replace = fsync, replace
    stall = {"max_s": 0.0}
    real_run = asyncio.run

    async def heartbeat():
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.002)
            stall["max_s"] = max(stall["max_s"], time.perf_counter() - before - 0.002)

    def run(coro, **kwargs):
        async def beside():
            beat = asyncio.ensure_future(heartbeat())
            try:
                return await coro
            finally:
                beat.cancel()
        return real_run(beside(), **kwargs)

    asyncio.run = run
    sys.argv = ["orchestrator", *sys.argv[2:]]
    started = time.perf_counter()
    code = 0
    try:
        runpy.run_module("orchestrator", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        wall = time.perf_counter() - started
        with open(out_path, "w") as out:
            json.dump({**counts, "wall_s": wall, "loop_stall_max_s": stall["max_s"],
                       "exit": code}, out)
    """
)


def plan(subaccounts: int, keys: int) -> str:
    lines = [
        "version: 1",
        "project: bench",
        "exchange: {kind: sandbox}",
        "defaults:",
        "  key_type: ed25519",
        "  rotate_after: 30d",
        "  grace: 1h",
        "  secrets: file:secrets/",
        "  ips: [203.0.113.10]",
        "subaccounts:",
    ]
    for s in range(subaccounts):
        lines += [f"  - name: s{s}", f"    email: s{s}@example.com", "    keys:"]
        lines += [f"      - label: Bot{k}\n        profile: read-only" for k in range(keys)]
    return "\n".join(lines) + "\n"


def export(base: str, into: Path) -> Path:
    """The base revision's tree, from `git archive` (the repository is left as it is)."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", base], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def measure(tree: Path, project: Path, text: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "BINANCE_"))}
    env["PYTHONPATH"] = str(tree)
    project.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    scaffold = "from pathlib import Path; from orchestrator.config import init_project; "
    scaffold += "init_project(Path.cwd())"
    subprocess.run([sys.executable, "-c", scaffold], cwd=project, env=env, check=True)
    (project / "plans" / "example.yaml").write_text(text, encoding="utf-8")
    out = project.parent / f"{project.name}.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), "apply", "--auto-approve"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.read_text())
    if result["exit"] != 0:
        raise SystemExit(f"apply failed in {project}:\n{done.stdout}\n{done.stderr}")
    return result


def per_key(result: dict, keys: int) -> dict:
    figures = {name: result[name] / keys for name in ("fsync", "fsync_on_loop", "replace")}
    figures["replace_on_loop"] = result["replace_on_loop"] / keys
    return {
        **{f"{name}_per_key": round(value, 2) for name, value in figures.items()},
        "wall_s": round(result["wall_s"], 2),
        "loop_stall_max_s": round(result["loop_stall_max_s"], 3),
        "sandbox_fsync_per_key": round(result["sandbox_fsync"] / keys, 2),
    }


def ratio(before: float, after: float) -> str:
    if after == 0:
        return "inf" if before else "1"
    return f"{before / after:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subaccounts", type=int, default=100)
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--base", default="main", help="the revision to compare with")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    keys = args.subaccounts * args.keys
    text = plan(args.subaccounts, args.keys)
    with tempfile.TemporaryDirectory(prefix="bench-persist-") as tmp:
        root = Path(tmp)
        base_tree = export(args.base, root / "base")
        before = per_key(measure(base_tree, root / "before", text), keys)
        after = per_key(measure(REPO, root / "after", text), keys)
    rows = [
        ("fsync per key", "fsync_per_key"),
        ("  of them on the event loop", "fsync_on_loop_per_key"),
        ("os.replace per key", "replace_per_key"),
        ("  of them on the event loop", "replace_on_loop_per_key"),
        ("wall s", "wall_s"),
        ("longest event-loop stall s", "loop_stall_max_s"),
    ]
    print(f"apply of {args.subaccounts} x {args.keys} keys (sandbox), {args.base} -> this tree")
    print(f"{'':30} {'before':>10} {'after':>10} {'before/after':>13}")
    for title, name in rows:
        print(
            f"{title:30} {before[name]:>10} {after[name]:>10} {ratio(before[name], after[name]):>13}"
        )
    print(
        f"(the sandbox's own fsyncs per key, not counted above: {after['sandbox_fsync_per_key']})"
    )
    if args.json:
        args.json.write_text(json.dumps({"before": before, "after": after}, indent=2) + "\n")


if __name__ == "__main__":
    main()
