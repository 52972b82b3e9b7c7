"""What plan and apply print: apply's lines in the plan's order, where each key's material
goes, which generation a grace deletion takes, and durations that never round into a false
statement."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.engine.elapsed import age_over, short_duration
from orchestrator.sinks import FileSink, VaultSink, material_location, open_sink
from orchestrator.wiring import Wiring, open_sandbox
from tests.cli.cli_kit import live_keys, run

PLAN = Path("plans") / "example.yaml"
ACTION_LINE = re.compile(r"^\s*(?:\+|~|-/\+|-)\s+\w+\s+(\S+)")
RESULT_LINE = re.compile(r"^\s*(?:ok|FAILED)\s+\w+\s+(\S+):")


def edit_plan(old: str, new: str) -> None:
    text = PLAN.read_text()
    assert old in text
    PLAN.write_text(text.replace(old, new, 1))


class AnswersLast:
    """The sandbox, answering every request that names `marker` after a delay, so that
    the action sending it finishes after the others of its phase."""

    def __init__(self, emulator, marker: str) -> None:
        self._emulator = emulator
        self._marker = marker

    def handle(self, request):
        answer = self._emulator.handle(request)
        if self._marker in request.raw_query or self._marker.encode() in request.body:
            answer.delay_s += 0.3
        return answer

    def __getattr__(self, name: str):
        return getattr(self._emulator, name)


def addresses(output: str, pattern: re.Pattern) -> list[str]:
    return [m.group(1) for line in output.splitlines() if (m := pattern.match(line))]


def test_apply_reports_results_in_the_order_the_plan_showed(project: Path):
    emulator = open_sandbox(project / "state" / "sandbox.json")
    slow_first = Wiring.with_sandbox(AnswersLast(emulator, "QuantBot-BTC"))
    applied = run("apply", stdin="yes\n", wiring=slow_first).output
    shown, done = applied.split("Only 'yes' will be accepted")
    planned = addresses(shown, ACTION_LINE)
    assert planned == ["copy", "quant/QuantBot-BTC", "quant/Koinly-Tax", "copy/CopyTrade-Bot"]
    assert addresses(done, RESULT_LINE) == planned


def test_results_wait_for_every_earlier_action():
    from orchestrator.cli.ui import InPlanOrder, in_plan_order

    class Result:
        def __init__(self, action):
            self.action = action

    actions = [object() for _ in range(4)]
    results = [Result(actions[n]) for n in (2, 0, 3, 1)]
    passed: list = []
    in_order = InPlanOrder(actions, passed.append)
    in_order(results[0])
    assert passed == []  # the action before it has not finished
    in_order(results[1])
    assert [r.action for r in passed] == actions[:1]
    in_order(results[2])
    in_order(results[3])
    assert [r.action for r in passed] == actions
    assert [r.action for r in in_plan_order(actions, results)] == actions
    passed.clear()
    unfinished = InPlanOrder(actions, passed.append)
    unfinished(results[2])
    unfinished.flush()
    assert [r.action for r in passed] == [actions[3]]


def test_plan_shows_where_each_key_material_goes_and_it_is_written_there(project: Path):
    planned = run("plan").output
    where = dict(re.findall(r"(\S+/\S+)\s+.*material to file:(\S+)", planned))
    assert where == {
        "quant/QuantBot-BTC": "secrets/quant/QuantBot-BTC.json",
        "quant/Koinly-Tax": "secrets/quant/Koinly-Tax.json",
        "copy/CopyTrade-Bot": "secrets/copy/CopyTrade-Bot.json",
    }
    run("apply", "--auto-approve")
    live = live_keys(project)
    for address, path in where.items():
        material = json.loads((project / path).read_text())
        assert material["apiKey"] in live, address  # the bots' key is the live one...
        ips = ["203.0.113.10", "198.51.100.7", "127.0.0.1"]
        assert any(signs(project, material, ip) for ip in ips), address  # ...and it works


def signs(project: Path, material: dict, ip: str) -> bool:
    """Whether the material at a shown path signs a request the exchange accepts from `ip`."""
    from orchestrator.emulator.transport import EmulatorTransport
    from orchestrator.exchange.client import BinanceClient
    from orchestrator.exchange.errors import ExchangeError
    from orchestrator.exchange.signing import HmacSigner, from_pem

    emulator = open_sandbox(project / "state" / "sandbox.json")
    signer = from_pem(material["apiKey"], material["private_key"].encode())
    master = HmacSigner(emulator.master.api_key, SecretStr(emulator.master.secret))

    async def call() -> bool:
        transport = EmulatorTransport(emulator, client_ip=ip)
        async with BinanceClient("https://sandbox.invalid", master, transport=transport) as c:
            try:
                await c.api_restrictions(signer)
            except ExchangeError:
                return False
            return True

    return asyncio.run(call())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("file:secrets/", "file:secrets/quant/Bot.json"),
        ("file:/srv/keys", "file:/srv/keys/quant/Bot.json"),
        ("dotenv:bots/quant.env", "dotenv:bots/quant.env"),
        ("vault:secret/orchestrator", "vault:secret/orchestrator/quant/Bot"),
        ("vault:secret", "vault:secret/quant/Bot"),
    ],
)
def test_material_location_is_where_the_sink_writes(tmp_path: Path, spec, expected):
    assert material_location(spec, "quant/Bot") == expected
    kind, _, target = spec.partition(":")
    if kind == "file":
        sink = open_sink(spec, tmp_path)
        assert isinstance(sink, FileSink)
        assert sink.path("quant/Bot", "current") == tmp_path / expected.removeprefix("file:")
    if kind == "vault":
        mount, _, base = target.partition("/")
        sink = VaultSink(mount, base, "http://127.0.0.1:1", "token")
        assert f"vault:{mount}/{sink.key_path('quant/Bot')}" == expected


def test_a_grace_deletion_names_the_generation_it_deletes(project: Path, monkeypatch):
    run("apply", "--auto-approve")
    run("rotate", "--label", "QuantBot-BTC", "--auto-approve")
    monkeypatch.setenv("ORCHESTRATOR_NOW", (datetime.now(UTC) + timedelta(hours=2)).isoformat())
    planned = run("plan").output
    line = next(ln for ln in planned.splitlines() if "delete" in ln)
    assert re.search(
        r"- delete\s+quant/QuantBot-BTC\s+g1 \(orc-example\.QuantBot-BTC-g1\): rotated out", line
    ), line
    data = json.loads(run("plan", "--json").output)
    deleting = next(a for a in data["actions"] if a["kind"] == "delete")
    assert deleting["description"].startswith("g1 (orc-example.QuantBot-BTC-g1)")


def test_rotation_reason_shows_the_seconds_that_make_a_key_due(project: Path, monkeypatch):
    edit_plan("rotate_after: 30d", "rotate_after: 1m")
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    monkeypatch.setenv("ORCHESTRATOR_NOW", start.isoformat())
    run("apply", "--auto-approve")
    monkeypatch.setenv("ORCHESTRATOR_NOW", (start + timedelta(seconds=61)).isoformat())
    planned = run("plan").output
    assert "age 1m01s > rotate_after 1m" in planned
    assert "age 1m > rotate_after 1m" not in planned


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (1, "1s"),
        (59, "59s"),
        (60, "1m"),
        (61, "1m01s"),
        (119, "1m59s"),
        (3599, "59m59s"),
        (3600, "1h"),
        (3601, "1h"),
        (3660, "1h01m"),
        (3720, "1h02m"),
        (86_399, "23h59m"),
        (86_400, "1d"),
        (86_400 + 3599, "1d"),
        (90_000, "1d01h"),
        (30 * 86_400 + 5 * 3600, "30d05h"),
        (-5, "0s"),
    ],
)
def test_short_duration_at_unit_boundaries(seconds, shown):
    assert short_duration(timedelta(seconds=seconds)) == shown


@pytest.mark.parametrize(
    ("age_s", "limit_s", "reason"),
    [
        (61, 60, "age 1m01s > rotate_after 1m"),
        (60.5, 60, "age 1m00.5s > rotate_after 1m"),
        (3720, 3600, "age 1h02m > rotate_after 1h"),
        (3600.000001, 3600, "age 1h00m00.000001s > rotate_after 1h"),
        (34 * 86_400 + 5 * 3600, 30 * 86_400, "age 34d > rotate_after 30d"),
        (30 * 86_400 + 300, 30 * 86_400, "age 30d00h05m > rotate_after 30d"),
        (30 * 86_400 + 3600, 30 * 86_400, "age 30d01h > rotate_after 30d"),
        (5400 + 1, 5400, "age 1h30m01s > rotate_after 1h30m"),
        (0.25, 0, "age 0.25s > rotate_after 0s"),
        (86_400 * 2, 86_400 + 1, "age 2d > rotate_after 1d1s"),
    ],
)
def test_a_rotation_reason_never_reads_as_equal(age_s, limit_s, reason):
    assert age_over(timedelta(seconds=age_s), timedelta(seconds=limit_s)) == reason
