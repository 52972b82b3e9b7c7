"""`make demo`: the main job, end to end, on the built-in sandbox (no Binance account needed).

In a fresh project folder (`demo-project/`, or the folder given) it runs what a user runs:
init, validate, plan, apply, plan again (no changes), then widens a key behind the
orchestrator's back the way a thief would, and shows plan flagging it and apply narrowing it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def run(project: Path, *args: str, check_codes: tuple[int, ...] = (0,)) -> None:
    print(f"\n$ orchestrator {' '.join(args)}", flush=True)
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=project, env=env)
    if done.returncode not in check_codes:
        sys.exit(f"demo: `orchestrator {' '.join(args)}` exited {done.returncode}")


def widen_out_of_band(project: Path) -> None:
    """Give the read-only tax key futures trading, as a stolen master key could."""
    import asyncio

    from orchestrator.exchange.models import Permission
    from orchestrator.logs import configure
    from orchestrator.wiring import open_exchange

    configure(verbose=False)

    async def widen() -> str:
        from orchestrator.config import ExchangeSettings

        client = open_exchange(ExchangeSettings(), project)
        try:
            for sub in await client.list_all_subaccounts():
                for key in await client.list_all_api_keys(sub.email):
                    if "Koinly" in key.api_name:
                        await client.set_permissions(
                            sub.email, key.api_key, frozenset({Permission.FUTURES})
                        )
                        return key.api_name
        finally:
            await client.aclose()
        raise SystemExit("demo: the tax key was not found")

    name = asyncio.run(widen())
    print(f"\n# Out of band, someone gives {name} futures trading...")


def main() -> None:
    project = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-project").resolve()
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=project, check=False)
    print(f"# A fresh project in {project}")
    run(project, "init")
    run(project, "validate")
    run(project, "plan", "--detailed-exitcode", check_codes=(2,))
    run(project, "apply", "--auto-approve")
    run(project, "plan", "--detailed-exitcode")
    run(project, "state", "list")
    widen_out_of_band(project)
    run(project, "plan", check_codes=(0,))
    run(project, "apply", "--auto-approve")
    run(project, "log", "verify")
    print(f"\n# Done. Key material is in {project / 'secrets'} (0600 files, git-ignored).")


if __name__ == "__main__":
    main()
