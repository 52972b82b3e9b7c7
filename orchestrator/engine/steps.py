"""Running a key's `reload:` and `check:` commands, and keeping what they print secret-free.

Each command is an argv list, run without a shell, in the project directory, with stdin
closed and a timeout (then its whole process group is killed). Its environment is small: a
few system variables (PATH, HOME, locale, the D-Bus and runtime dirs `systemctl` needs) and
`ORCHESTRATOR_*` variables naming the key and where its material is. Never the secret,
never the master credentials or a Vault token from the orchestrator's own environment.

What a command prints (stdout and stderr together) is kept for the audit log, bounded, and
scrubbed first: the key material of every generation the sink holds (whole, and line by
line for a PEM), PEM blocks, and any long run of key-like characters are replaced, so a
command that echoes the bot's env file leaks nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

#: variables of the orchestrator's environment a step sees; everything else stays out.
PASSED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SHELL",
    "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
)
#: bytes of output read from a step; the rest is drained unread.
CAPTURE_BYTES = 64 * 1024
#: characters of (scrubbed) output kept for the audit log: the end, where errors are.
EXCERPT_CHARS = 1000
#: how long a finished step's output is still read (a child it left may hold the pipe).
DRAIN_S = 1.0
REDACTED = "[redacted]"
#: key-like runs: API keys, HMAC secrets, base64 lines of a PEM.
_KEY_LIKE = re.compile(r"[A-Za-z0-9+/]{32,}={0,2}")
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
#: the shortest piece of a secret scrubbed on its own (PEM lines, a secret cut at the end).
_SHORTEST_PIECE = 8


@dataclass(frozen=True)
class StepTarget:
    """What a step is told about the key it runs for (its ORCHESTRATOR_* variables)."""

    address: str
    subaccount: str
    label: str
    generation: int
    api_name: str
    sink_kind: str
    sink_location: str

    def env(self, step: str) -> dict[str, str]:
        return {
            "ORCHESTRATOR_STEP": step,
            "ORCHESTRATOR_ADDRESS": self.address,
            "ORCHESTRATOR_SUBACCOUNT": self.subaccount,
            "ORCHESTRATOR_LABEL": self.label,
            "ORCHESTRATOR_GENERATION": str(self.generation),
            "ORCHESTRATOR_API_NAME": self.api_name,
            "ORCHESTRATOR_SINK_KIND": self.sink_kind,
            "ORCHESTRATOR_SINK_LOCATION": self.sink_location,
        }


@dataclass(frozen=True)
class StepResult:
    step: str  # reload | check
    program: str
    ok: bool
    exit_status: int | None  # None: it did not run, or was killed at the timeout
    reason: str  # why it failed; "" when it succeeded
    output: str  # the end of what it printed, scrubbed

    def audit_detail(self) -> dict:
        return {
            "step": self.step,
            "program": self.program,
            "exit_status": self.exit_status,
            "reason": self.reason,
            "output": self.output,
        }


@dataclass(frozen=True)
class StepsOutcome:
    """The reload step and then the check step (not run when reload failed)."""

    results: tuple[StepResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def reason(self) -> str:
        return "; ".join(f"{r.step}: {r.reason}" for r in self.results if not r.ok)


async def run_steps(
    reload: tuple[str, ...],
    check: tuple[str, ...],
    target: StepTarget,
    *,
    cwd: Path,
    timeout_s: float,
    secrets: Collection[str] = (),
    environ: Mapping[str, str] = os.environ,
) -> StepsOutcome:
    """Run `reload`, then (if it succeeded) `check`; an empty command is skipped."""
    results: list[StepResult] = []
    for step, argv in (("reload", reload), ("check", check)):
        if not argv:
            continue
        result = await run_step(
            step, argv, target, cwd=cwd, timeout_s=timeout_s, secrets=secrets, environ=environ
        )
        results.append(result)
        if not result.ok:
            break
    return StepsOutcome(tuple(results))


async def run_step(
    step: str,
    argv: tuple[str, ...],
    target: StepTarget,
    *,
    cwd: Path,
    timeout_s: float,
    secrets: Collection[str] = (),
    environ: Mapping[str, str] = os.environ,
) -> StepResult:
    program = argv[0]
    env = {k: v for k, v in environ.items() if k in PASSED_ENV or k.startswith("LC_")}
    env.update(target.env(step))
    try:
        status, captured = await asyncio.to_thread(_run, argv, cwd, env, timeout_s)
    except OSError as exc:
        reason = f"cannot run {program}: {exc.strerror or type(exc).__name__}"
        return StepResult(step, program, False, None, reason, "")
    output = excerpt(captured, secrets)
    if status is None:
        reason = f"timed out after {timeout_s:g}s (killed)"
    elif status != 0:
        reason = f"exit status {status}" if status > 0 else f"killed by signal {-status}"
    else:
        reason = ""
    return StepResult(step, program, status == 0, status, reason, output)


def _run(
    argv: tuple[str, ...], cwd: Path, env: dict[str, str], timeout_s: float
) -> tuple[int | None, bytes]:
    """(exit status, or None when killed at the timeout; the first CAPTURE_BYTES of its
    output). One loop reads the output and watches the clock: a child the command leaves
    running with the pipe open is not waited for beyond DRAIN_S."""
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    captured = bytearray()
    deadline = time.monotonic() + timeout_s
    drain_until: float | None = None  # set once the command has ended
    status: int | None = None
    eof = False
    with process.stdout as pipe:
        while True:
            now = time.monotonic()
            if drain_until is None and process.poll() is not None:
                status, drain_until = process.returncode, now + DRAIN_S
            elif drain_until is None and now >= deadline:
                _kill_group(process.pid)
                process.wait()
                status, drain_until = None, now + DRAIN_S
            if drain_until is not None and (eof or now >= drain_until):
                break
            if eof:
                time.sleep(0.05)
                continue
            ready, _, _ = select.select([pipe], [], [], 0.05)
            if ready:
                chunk = os.read(pipe.fileno(), 65536)
                eof = not chunk
                captured += chunk[: max(0, CAPTURE_BYTES - len(captured))]
    return status, bytes(captured)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def excerpt(raw: bytes, secrets: Collection[str] = ()) -> str:
    """The end of a step's output, at most EXCERPT_CHARS, with key material scrubbed out
    before it is cut (a cut can only remove characters, never reveal them)."""
    text = scrub(raw.decode("utf-8", errors="replace"), secrets)
    text = text.strip()
    return text if len(text) <= EXCERPT_CHARS else "..." + text[-EXCERPT_CHARS:]


def scrub(text: str, secrets: Collection[str] = ()) -> str:
    """`text` with every known secret (whole, by line, and a piece of one cut off at the
    end), every PEM block and every key-like run replaced by REDACTED."""
    pieces = _pieces(secrets)
    for piece in pieces:
        text = text.replace(piece, REDACTED)
    text = _PEM.sub(REDACTED, text)
    text = _KEY_LIKE.sub(REDACTED, text)
    return _without_cut_secret(text, pieces)


def _pieces(secrets: Collection[str]) -> list[str]:
    """Each secret and each of its lines long enough to be told apart, longest first."""
    found = set()
    for secret in secrets:
        if len(secret) >= _SHORTEST_PIECE:
            found.add(secret)
        found |= {line.strip() for line in secret.splitlines()}
    return sorted((p for p in found if len(p) >= _SHORTEST_PIECE), key=len, reverse=True)


def _without_cut_secret(text: str, pieces: list[str]) -> str:
    """A secret cut off by the capture bound ends the text: drop the piece that shows."""
    for piece in pieces:
        for size in range(len(piece) - 1, _SHORTEST_PIECE - 1, -1):
            if text.endswith(piece[:size]):
                return text[:-size] + REDACTED
    return text
