"""Running reload/check commands: their environment, their bounded and scrubbed output, and
what happens when one hangs, leaves a child behind or cannot start."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from orchestrator.engine.steps import (
    CAPTURE_BYTES,
    EXCERPT_CHARS,
    REDACTED,
    StepTarget,
    excerpt,
    run_step,
    run_steps,
    scrub,
)
from orchestrator.exchange.signing import generate_ed25519

TARGET = StepTarget(
    address="quant/Bot",
    subaccount="quant",
    label="Bot",
    generation=3,
    api_name="orc-desk.Bot-g3",
    sink_kind="dotenv",
    sink_location="/srv/bots/bot.env",
)
PYTHON = sys.executable


async def step(tmp_path: Path, code: str, *, timeout_s: float = 20, secrets=(), environ=None):
    return await run_step(
        "reload",
        (PYTHON, "-c", code),
        TARGET,
        cwd=tmp_path,
        timeout_s=timeout_s,
        secrets=secrets,
        environ=environ if environ is not None else os.environ,
    )


def test_scrub_removes_known_secrets_pem_blocks_and_key_like_runs():
    private, _ = generate_ed25519()
    private_pem = private.get_secret_value()
    hmac_secret = "s3cr3t-" + "Q" * 10
    text = (
        f"BINANCE_API_SECRET={hmac_secret}\n{private_pem}\n"
        f"one PEM line: {private_pem.splitlines()[1]}\n"
        f"BINANCE_API_KEY={'a1B2' * 16}\nreload done: exit 0"
    )
    scrubbed = scrub(text, [hmac_secret, private_pem])
    assert hmac_secret not in scrubbed and "Q" * 10 not in scrubbed
    assert all(line not in scrubbed for line in private_pem.splitlines()[1:-1])
    assert "a1B2" * 16 not in scrubbed and f"BINANCE_API_KEY={REDACTED}" in scrubbed
    assert "reload done: exit 0" in scrubbed


def test_a_secret_cut_off_at_the_end_of_the_output_is_scrubbed():
    secret = "not-key-like-but-secret"
    assert scrub("before " + secret[:12], [secret]) == "before " + REDACTED


def test_the_excerpt_keeps_the_end_and_is_bounded():
    kept = excerpt(("x " * 5000 + "the error").encode())
    assert len(kept) <= EXCERPT_CHARS + 3 and kept.endswith("the error")


async def test_the_step_sees_its_key_and_location_but_no_credentials(tmp_path: Path):
    environ = {
        "PATH": os.environ["PATH"],
        "LC_ALL": "C.UTF-8",
        "BINANCE_API_SECRET": "master-secret",
        "VAULT_TOKEN": "vault-token",
        "ORCHESTRATOR_PG_DSN": "postgresql://secret@db/x",
    }
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    result = await step(tmp_path, code, environ=environ)
    assert result.ok and result.exit_status == 0 and result.reason == ""
    seen = json.loads(result.output)
    assert seen["PATH"] == environ["PATH"] and seen["LC_ALL"] == "C.UTF-8"
    assert not {"BINANCE_API_SECRET", "VAULT_TOKEN", "ORCHESTRATOR_PG_DSN"} & set(seen)
    assert seen["ORCHESTRATOR_STEP"] == "reload"
    assert seen["ORCHESTRATOR_GENERATION"] == "3"
    assert seen["ORCHESTRATOR_API_NAME"] == "orc-desk.Bot-g3"
    assert seen["ORCHESTRATOR_SINK_LOCATION"] == "/srv/bots/bot.env"


async def test_a_flood_of_output_is_read_to_the_end_but_kept_bounded(tmp_path: Path):
    code = f"import sys; sys.stdout.write('y' * {4 * CAPTURE_BYTES}); sys.exit(2)"
    result = await step(tmp_path, code)
    assert not result.ok and result.reason == "exit status 2"
    assert len(result.output) <= EXCERPT_CHARS + 3


async def test_a_hanging_step_is_killed_with_its_children(tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; "
        f"child = subprocess.Popen([{PYTHON!r}, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"
    )
    result = await step(tmp_path, code, timeout_s=1)
    assert not result.ok and result.exit_status is None
    assert result.reason == "timed out after 1s (killed)"
    child = int(pid_file.read_text())
    try:
        os.waitpid(child, os.WNOHANG)
    except ChildProcessError:
        pass
    with pytest.raises(ProcessLookupError):
        for _ in range(100):  # SIGKILL is delivered at once; give the kernel a moment
            os.kill(child, 0)
            await asyncio.sleep(0.05)


async def test_a_step_that_leaves_a_child_holding_its_output_still_finishes(tmp_path: Path):
    code = (
        "import subprocess; "
        f"subprocess.Popen([{PYTHON!r}, '-c', 'import time; time.sleep(5)']); print('started')"
    )
    result = await step(tmp_path, code)
    assert result.ok and result.output == "started"


async def test_a_missing_program_is_a_failure_naming_it(tmp_path: Path):
    result = await run_step("check", (str(tmp_path / "nope"),), TARGET, cwd=tmp_path, timeout_s=5)
    assert not result.ok and result.reason.startswith(f"cannot run {tmp_path / 'nope'}")


async def test_check_does_not_run_when_reload_failed(tmp_path: Path):
    marker = tmp_path / "checked"
    outcome = await run_steps(
        (PYTHON, "-c", "raise SystemExit(1)"),
        (PYTHON, "-c", f"open({str(marker)!r}, 'w')"),
        TARGET,
        cwd=tmp_path,
        timeout_s=10,
    )
    assert not outcome.ok and [r.step for r in outcome.results] == ["reload"]
    assert outcome.reason == "reload: exit status 1" and not marker.exists()
