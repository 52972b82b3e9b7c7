"""A running bot across scheduled rotations: `orchestrator rotate` (a subprocess) against
`emulator serve` on loopback, and a bot process (tests/cli/bot.py) that signs a request every
~50 ms with the key it read from its dotenv file, re-reading it on SIGHUP.

With `reload:` (signal the bot) and `check:` (wait for its acknowledgement) the bot never
sees a failed call across three rotations; without `reload:` it does, which is what users
would see and what shows the test can fail; a failing `reload:` keeps the old key live and
the bot working. Calls are counted by the bot; which keys are live is asked of the emulator.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.config import init_project
from tests.cli.conftest import admin_headers

HERE = Path(__file__).resolve().parent
LABEL = "Bot"
PLAN = """\
version: 1
project: desk
exchange:
  kind: binance
  endpoint: {endpoint}
defaults:
  key_type: hmac
  grace: {grace}
  ips: []
subaccounts:
  - name: quant
    email: quant@example.com
    keys:
      - label: Bot
        profile: read-only
        secrets: dotenv:bots/bot.env
{steps}"""


class Bot:
    """The bot process and what it has done."""

    def __init__(self, project: Path, base_url: str) -> None:
        self.calls_file = project / "bot-calls.jsonl"
        self.ack_file = project / "bot-ack.json"
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "bot.py"), str(project / "bots" / "bot.env"), base_url]
            + [str(self.calls_file), str(self.ack_file)],
        )

    def calls(self) -> list[dict]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines() if line]

    def failed(self) -> list[dict]:
        return [c for c in self.calls() if not c["ok"]]

    def made_calls_with(self, generation: int, count: int = 5) -> None:
        wait_until(
            lambda: sum(c["generation"] == str(generation) for c in self.calls()) >= count,
            f"{count} calls with generation {generation}",
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"waited {limit_s:g}s for {what}"
        time.sleep(0.05)


@pytest.fixture
def served(server) -> str:
    base_url, announced = server
    added = httpx.post(
        f"{base_url}/_emulator/subaccount",
        json={"email": "quant@example.com"},
        headers=admin_headers(announced),
        timeout=10,
    )
    assert added.status_code == 200, added.text
    return base_url


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    init_project(root)
    with open(root / ".gitignore", "a", encoding="utf-8") as out:
        out.write("bots/\n")
    return root


def write_plan(project: Path, endpoint: str, grace: str, *steps: str) -> None:
    (project / "plans" / "example.yaml").write_text(
        PLAN.format(endpoint=endpoint, grace=grace, steps="".join(steps))
    )


def reload_step(bot: Bot) -> str:
    return f'        reload: ["kill", "-HUP", "{bot.process.pid}"]\n'


def check_step(bot: Bot) -> str:
    script = json.dumps(str(HERE / "bot_switched.py"))
    return f'        check: [{json.dumps(sys.executable)}, {script}, "{bot.ack_file}"]\n'


def orchestrator(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(project: Path, env: dict, *args: str) -> str:
    done = orchestrator(project, env, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def live_bot_keys(base_url: str, env: dict) -> list[str]:
    """The label's live apiNames, as the emulator lists them (signed with the master)."""
    import hashlib
    import hmac

    query = f"email=quant%40example.com&timestamp={int(time.time() * 1000)}"
    secret = env["BINANCE_API_SECRET"].encode()
    signature = hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()
    listed = httpx.get(
        f"{base_url}/sapi/v1/sub-account/subAccountApi?{query}&signature={signature}",
        headers={"X-MBX-APIKEY": env["BINANCE_API_KEY"]},
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    body = listed.json()
    return sorted(row["apiName"] for row in body.get("rows", body.get("list", [])))


@pytest.fixture
def running(project: Path, served: str, env: dict) -> Iterator[tuple[Bot, str]]:
    """The key applied (generation 1) and the bot running on it."""
    write_plan(project, served, "0s")
    ok(project, env, "apply", "--auto-approve")
    bot = Bot(project, served)
    try:
        bot.made_calls_with(1)
        yield bot, served
    finally:
        bot.stop()


@pytest.mark.parametrize("grace", ["0s", "1s"])
def test_three_rotations_with_reload_give_the_bot_no_failed_call(
    project: Path, env: dict, running, grace: str
):
    bot, base_url = running
    write_plan(project, base_url, grace, reload_step(bot), check_step(bot))
    for generation in (2, 3, 4):
        out = ok(project, env, "rotate", "--label", LABEL, "--auto-approve")
        assert "reload/check succeeded" in out
        bot.made_calls_with(generation)
    if grace != "0s":
        assert len(live_bot_keys(base_url, env)) > 1  # the last previous key is in its grace
        time.sleep(1.1)  # let it end: the next scheduled run deletes the previous key
        ok(project, env, "rotate", "--due", "--auto-approve")
        bot.made_calls_with(4, count=10)
    assert live_bot_keys(base_url, env) == ["orc-desk.Bot-g4"]
    assert bot.failed() == []
    assert {c["generation"] for c in bot.calls()} == {"1", "2", "3", "4"}


def test_without_reload_the_bot_fails_once_its_key_is_deleted(project: Path, env: dict, running):
    bot, base_url = running
    ok(project, env, "rotate", "--label", LABEL, "--auto-approve")
    wait_until(lambda: len(bot.failed()) >= 3, "the bot's calls to fail")
    assert live_bot_keys(base_url, env) == ["orc-desk.Bot-g2"]
    assert {c["generation"] for c in bot.failed()} == {"1"}  # it never read the new key


def test_a_failing_reload_keeps_the_old_key_and_the_bot_working(project: Path, env: dict, running):
    bot, base_url = running
    failing = f'        reload: [{json.dumps(sys.executable)}, "-c", "raise SystemExit(3)"]\n'
    write_plan(project, base_url, "0s", failing)
    done = orchestrator(project, env, "rotate", "--label", LABEL, "--auto-approve")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "reload: exit status 3" in done.stdout
    assert live_bot_keys(base_url, env) == ["orc-desk.Bot-g1", "orc-desk.Bot-g2"]
    calls_before = len(bot.calls())
    wait_until(lambda: len(bot.calls()) >= calls_before + 10, "more calls")
    assert bot.failed() == []

    plan = orchestrator(project, env, "plan", "--detailed-exitcode")
    assert plan.returncode == 2 and "orc-desk.Bot-g1 waiting for bots to switch" in plan.stdout

    write_plan(project, base_url, "0s", reload_step(bot), check_step(bot))
    out = ok(project, env, "rotate", "--reload-only", "--label", LABEL, "--auto-approve")
    assert "deleted orc-desk.Bot-g1" in out
    bot.made_calls_with(2)
    assert live_bot_keys(base_url, env) == ["orc-desk.Bot-g2"]
    assert bot.failed() == []
