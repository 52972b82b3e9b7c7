"""Shared pieces of the reliability tests: a fixture project, the CLI as a subprocess, and the
invariants every apply must leave behind whatever crashed or failed.

The scenario: plan v1 is applied with the clock 31 days back, keys are made out of band,
then plan v2 (the one under test) creates, updates permissions and IPs, rotates (grace 0s
and 1h, ed25519 and HMAC, file and dotenv sinks, one with `verify: true`, one with a
`reload:` step), prunes, and
creates a virtual sub-account with its key, across a regular sub-account (by email) and two
virtual ones.

Every project runs on the local files or, made with `backend="postgres"`, on a schema of its
own in the test server: the helpers here read the store through the backend the plan names.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.config import init_project, load_plan
from orchestrator.domain.naming import api_name
from orchestrator.exchange.models import FLAG_OF
from tests import pg_kit

PLAN_V1 = """\
version: 1
exchange: {kind: sandbox}
defaults:
  key_type: ed25519
  rotate_after: 30d
  grace: 1h
  secrets: file:secrets/
  ips: [203.0.113.10]
subaccounts:
  - name: quant
    email: quant@example.com
    prune: true
    keys:
      - label: QuantBot-BTC
        profile: quant
        grace: 0s
      - label: Koinly-Tax
        profile: read-only
        key_type: hmac
        ips: []
        verify: true
      - label: Updater
        permissions: [read, spot]
        rotate_after: 365d
      - label: OldBot
        profile: read-only
        ips: []
  - name: copy
    virtual: copytrade
    keys:
      - label: CopyTrade-Bot
        profile: copy-trade
        key_type: hmac
        grace: 0s
        ips: [198.51.100.7]
        secrets: dotenv:bots/copytrade.env
        reload: ["true"]
      - label: Tracker
        profile: read-only
        ips: []
        rotate_after: 365d
"""

#: v2: rotate QuantBot (ed25519, grace 0s), Koinly (hmac, grace 1h, verify) and CopyTrade
#: (hmac, dotenv, grace 0s); widen Updater's permissions and swap its IP; prune OldBot and an
#: out-of-band key; create NewHmac, NewEd (verify) and a virtual sub-account with a key.
PLAN_V2 = (
    PLAN_V1.replace(
        """      - label: Updater
        permissions: [read, spot]
        rotate_after: 365d
      - label: OldBot
        profile: read-only
        ips: []
""",
        """      - label: Updater
        permissions: [read, spot, futures]
        ips: [203.0.113.11]
        rotate_after: 365d
      - label: NewHmac
        profile: copy-trade
        key_type: hmac
""",
    ).replace(
        """        ips: []
        rotate_after: 365d
""",
        """        ips: []
        rotate_after: 365d
      - label: NewEd
        profile: read-only
        ips: []
        verify: true
""",
    )
    + """  - name: fresh
    virtual: freshbot
    keys:
      - label: FreshKey
        profile: quant
"""
)
assert PLAN_V2.count("NewHmac") == 1 and PLAN_V2.count("NewEd") == 1

#: apiNames of keys made out of band that the plan must leave alone (copy has no prune).
UNMANAGED = frozenset({"mystery-key"})
PLAN_PATH = Path("plans") / "example.yaml"
STATE_PATH = Path("state") / "example.state.json"
JOURNAL_PATH = Path("state") / "example.journal.jsonl"
SANDBOX_PATH = Path("state") / "sandbox.json"


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BINANCE_", "ORCHESTRATOR_", "PYTEST_"))
    }
    if os.environ.get("RELIABILITY_PYTHONPATH"):  # to run the matrix against another tree
        env["PYTHONPATH"] = os.environ["RELIABILITY_PYTHONPATH"]
    env["ORCHESTRATOR_PG_DSN"] = pg_kit.test_dsn()  # used only by a plan naming postgres
    env.update(extra)
    return env


def run(project: Path, *args: str, timeout: float = 120, **env: str):
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=project,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def new_project(path: Path, plan: str = PLAN_V1, backend: str = "local") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    init_project(path)
    with open(path / ".gitignore", "a", encoding="utf-8") as out:
        out.write("bots/\n")
    if backend == "postgres":
        plan = pg_kit.with_backend(plan, pg_kit.new_schema_name())
    (path / PLAN_PATH).write_text(plan, encoding="utf-8")
    return path


def write_plan(project: Path, text: str) -> None:
    """Replace the plan, keeping the backend the project's store is in."""
    schema = pg_kit.schema_of(project / PLAN_PATH)
    if schema is not None:
        text = pg_kit.with_backend(text, schema)
    (project / PLAN_PATH).write_text(text, encoding="utf-8")


@contextmanager
def store_of(project: Path):
    """The project's store, opened the way the tool opens it for the plan (and closed)."""
    from orchestrator.store.files import LocalFileBackend

    schema = pg_kit.schema_of(project / PLAN_PATH)
    if schema is None:
        yield LocalFileBackend(project)
        return
    backend = pg_kit.open_backend(project, schema)
    try:
        yield backend
    finally:
        backend.store.close()


def past(days: int = 31) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def build_scenario(path: Path, backend: str = "local") -> Path:
    """A project where plan v1 was applied 31 days ago, with keys made out of band since,
    and plan v2 in place: ready for the apply under test."""
    project = new_project(path, backend=backend)
    done = run(project, "apply", "--auto-approve", ORCHESTRATOR_NOW=past())
    assert done.returncode == 0, done.stdout + done.stderr
    state = read_state(project)
    make_key_out_of_band(project, "quant@example.com", "stray-key")
    make_key_out_of_band(project, state["subaccounts"]["copy"]["email"], "mystery-key")
    write_plan(project, PLAN_V2)
    return project


def copy_project(base: Path, dest: Path) -> Path:
    """A copy of the project and of its store (a schema of its own, for postgres)."""
    shutil.copytree(base, dest, symlinks=True)
    schema = pg_kit.schema_of(dest / PLAN_PATH)
    if schema is not None:
        plan = dest / PLAN_PATH
        plan.write_text(pg_kit.with_backend(plan.read_text(), pg_kit.clone_schema(schema)))
    return dest


def make_key_out_of_band(project: Path, email: str, api_name: str) -> None:
    """A key made in the web UI (or by an attacker): not in any plan."""
    from orchestrator.config import ExchangeSettings
    from orchestrator.exchange.models import Permission
    from orchestrator.logs import configure
    from orchestrator.wiring import open_exchange

    configure(verbose=False)

    async def make() -> None:
        async with open_exchange(ExchangeSettings(), project) as client:
            await client.create_api_key(
                email, api_name, frozenset({Permission.SPOT}), ["203.0.113.99"]
            )

    asyncio.run(make())


def read_state(project: Path) -> dict:
    if pg_kit.schema_of(project / PLAN_PATH) is None:
        return json.loads((project / STATE_PATH).read_text())
    with store_of(project) as store:
        state = store.load_state(Path(PLAN_PATH).stem)
    assert state is not None, f"no state in the store of {project}"
    return state.model_dump(mode="json")


def _readable_state(project: Path, chaos) -> dict:
    """The state as the store reads it; one it refuses counts as a corrupt state."""
    from orchestrator.store.errors import StoreError

    try:
        with store_of(project) as store:
            store.load_state(Path(PLAN_PATH).stem)
    except StoreError:
        if chaos is not None:
            chaos.add("corrupt_states_found")
        raise
    return read_state(project)


def serial(project: Path) -> int:
    with store_of(project) as store:
        state = store.load_state(Path(PLAN_PATH).stem)
    return state.serial if state is not None else 0


def replace_backup(project: Path, state: dict) -> None:
    """Make `state` the version `state restore` puts back, as an operator restoring an older
    backup would."""
    from orchestrator.store.state import State

    body = State.model_validate(state).model_dump_json(indent=2) + "\n"
    schema = pg_kit.schema_of(project / PLAN_PATH)
    if schema is None:
        backup = project / STATE_PATH.with_name(STATE_PATH.name + ".backup")
        backup.unlink()
        backup.write_text(body)
        return
    import psycopg

    with psycopg.connect(pg_kit.test_dsn(), autocommit=True) as conn:
        conn.execute(
            f"UPDATE {schema}.state_history SET body = %s WHERE version ="
            f" (SELECT max(version) FROM {schema}.state_history)",
            (body,),
        )


def open_intents(project: Path) -> int:
    with store_of(project) as store:
        return len(store.journal(Path(PLAN_PATH).stem).pending())


def store_texts(project: Path) -> list[str]:
    """Everything the project's store holds, as text: its files, or its schema's rows."""
    texts = [
        p.read_text(errors="replace")
        for p in (project / "state").iterdir()
        if p.is_file() and p.name != "sandbox.json"  # the exchange's own data, not ours
    ]
    schema = pg_kit.schema_of(project / PLAN_PATH)
    if schema is None:
        return texts
    import psycopg

    with psycopg.connect(pg_kit.test_dsn(), autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(f'SELECT * FROM {schema}."{table}"').fetchall()
            texts.append("\n".join(repr(row) for row in rows))
    return texts


def sandbox(project: Path):
    from orchestrator.wiring import open_sandbox

    return open_sandbox(project / SANDBOX_PATH)


def crash_trace(
    project: Path, trace: Path, command: Sequence[str] = ("apply", "--auto-approve"), **env: str
) -> Counter:
    """Run `command` (apply by default) without crashing and count how often each crash
    point is reached."""
    done = run(project, *command, ORCHESTRATOR_CRASH_TRACE=str(trace), **env)
    assert done.returncode == 0, done.stdout + done.stderr
    return Counter(trace.read_text().split()) if trace.exists() else Counter()


#: what converges a project after a crash: the plain apply an operator would run.
CONVERGE_COMMAND = ("apply", "--auto-approve")


@dataclass
class Converged:
    runs: int
    outputs: list[str]


def converge(project: Path, max_runs: int = 3, **env: str) -> Converged:
    """Re-run plain `apply --auto-approve` until it exits 0 (at most `max_runs` times). No
    `--break-stale-lock`: the lock a killed run leaves must not stop the next apply."""
    outputs = []
    for attempt in range(1, max_runs + 1):
        done = run(project, *CONVERGE_COMMAND, **env)
        outputs.append(done.stdout + done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        if done.returncode == 0:
            return Converged(attempt, outputs)
    raise AssertionError(f"apply did not converge in {max_runs} runs:\n" + "\n---\n".join(outputs))


# ---------------------------------------------------------------- invariants


def _live_permissions(key) -> frozenset[str]:
    return frozenset(p.value for p, flag in FLAG_OF.items() if key.flags.get(flag))


def _material_matches(material, live_key) -> bool:
    """The material really is the live key's secret: the HMAC secret, or the private key of
    the registered public key."""
    secret = material.secret.get_secret_value()
    if live_key.key_type == "HMAC_SHA256":
        return secret == live_key.secret
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(secret.encode(), password=None)
    public = serialization.load_pem_public_key(live_key.public_key.encode())
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    return private.public_key().public_bytes(*raw) == public.public_bytes(*raw)


def check_invariants(
    project: Path, *, serial_before: int = 0, unmanaged=UNMANAGED, cli=None, chaos=None
) -> None:
    """What every apply must leave behind: live matches the plan; every live managed key's
    material is in its sink; no live key unknown to state (but the unmanaged ones); no
    duplicate apiName; state serial grew; audit chain intact; no open journal intent; no
    pending material left over; the plan shows no changes."""
    from orchestrator.sinks import open_sink

    plan = load_plan(project / PLAN_PATH)
    state = _readable_state(project, chaos)
    emu = sandbox(project)
    problems: list[str] = []

    assert state["serial"] > serial_before, (state["serial"], serial_before)
    names = Counter(
        (email, k.api_name) for email, sub in emu.accounts.subs.items() for k in sub.keys.values()
    )
    problems += [f"duplicate apiName {n} in {e}" for (e, n), c in names.items() if c > 1]
    live = {k.api_key: k for sub in emu.accounts.subs.values() for k in sub.keys.values()}

    known: set[str] = set()
    for desired in plan.desired.keys():
        record = state["keys"].get(desired.address)
        if record is None:
            problems.append(f"{desired.address}: not in state")
            continue
        known.add(record["api_key"])
        key = live.get(record["api_key"])
        if key is None:
            problems.append(f"{desired.address}: recorded key is not live")
            continue
        if key.api_name != api_name(desired.label, record["generation"], desired.owner):
            problems.append(f"{desired.address}: live apiName {key.api_name}")
        if _live_permissions(key) != {p.value for p in desired.permissions}:
            problems.append(f"{desired.address}: permissions {sorted(_live_permissions(key))}")
        live_ips = sorted(key.ip_list) if key.ip_restricted else []
        if live_ips != sorted(desired.ips):
            problems.append(f"{desired.address}: ips {live_ips} != {sorted(desired.ips)}")
        sink = open_sink(desired.sink, project)
        current = sink.read_current(desired.address)
        if current is None or current.api_key != key.api_key:
            problems.append(f"{desired.address}: sink current does not hold the live key")
        elif not _material_matches(current, key):
            problems.append(f"{desired.address}: sink holds a secret that is not the key's")
        if sink.read_pending(desired.address) is not None:
            problems.append(f"{desired.address}: pending material left in the sink")
        for old in record["previous"]:
            known.add(old["api_key"])
            if old["api_key"] not in live:
                problems.append(f"{desired.address}: retired key in state is not live")
                continue
            held = [m for m in sink.read_held(desired.address) if m.api_key == old["api_key"]]
            previous = held[0] if held else None
            if previous is None:
                problems.append(f"{desired.address}: previous material not kept through grace")
            elif not _material_matches(previous, live[old["api_key"]]):
                problems.append(f"{desired.address}: previous material is not the key's")
    for api_key, key in live.items():
        if api_key not in known and key.api_name not in unmanaged:
            problems.append(f"live key {key.api_name} in {key.email} is unknown to state")
    if unmanaged and not any(k.api_name in unmanaged for k in live.values()):
        problems.append("an unmanaged key was deleted")
    pending = open_intents(project)
    if pending:
        problems.append(f"{pending} open journal intents")
    if chaos is not None:
        chaos.add("duplicate_keys_found", sum("duplicate apiName" in p for p in problems))
        chaos.add("orphan_keys_found", sum("unknown to state" in p for p in problems))
    assert not problems, "\n".join(problems)

    cli = cli or (lambda *args: _subprocess_cli(project, *args))
    code, output = cli("log", "verify")
    assert code == 0, output
    code, output = cli("plan", "--detailed-exitcode")
    # 3: no changes, but an unmanaged key that can trade is live (mystery-key has spot)
    assert code in (0, 3) and "No changes" in output, output


def check_from_outside(
    project: Path, *, in_grace: Mapping[str, int], seen_secrets: Iterable[str] = (), chaos=None
) -> None:
    """What the bots and the live account show, judged by the safety kit without the tool's
    state: every planned key's bot-facing material is live and signs; no file holds material
    of a dead key; no label has more live keys than its current one plus the `in_grace`
    generations (by label) whose grace has not ended."""
    from tests.safety.safety_kit import bots_keys_work, material_of_dead_keys

    verdicts = {
        "bots_keys_work": list(bots_keys_work(project).problems),
        "dead_key_material": material_of_dead_keys(project, seen_secrets),
        "label_generations": labels_over_their_generations(project, in_grace),
    }
    for name, problems in verdicts.items():
        if chaos is not None:
            chaos.add(f"invariant_{name}_checked")
            chaos.add(f"invariant_{name}_failed", int(bool(problems)))
    found = [problem for problems in verdicts.values() for problem in problems]
    assert not found, "\n".join(found)


def labels_over_their_generations(project: Path, in_grace: Mapping[str, int]) -> list[str]:
    """Planned labels with more live `orc-` keys than 1 + their generations in grace."""
    from tests.safety.safety_kit import live_keys, planned_keys

    live = live_keys(project)
    problems = []
    for planned in planned_keys(project):
        names = sorted(k.api_name for k in live if k.generation_of(planned.label) is not None)
        allowed = 1 + in_grace.get(planned.label, 0)
        if len(names) > allowed:
            problems.append(f"{planned.address}: {len(names)} live keys > {allowed}: {names}")
    return problems


def _subprocess_cli(project: Path, *args: str) -> tuple[int, str]:
    done = run(project, *args)
    return done.returncode, done.stdout + done.stderr


def faulty_sandbox(project: Path, **options):
    """The project's sandbox emulator with fault options, as wiring.open_sandbox opens it;
    rate-limit windows of 2 s and latency spikes of 10 ms keep the tests quick."""
    from orchestrator.emulator import persist
    from orchestrator.emulator.accounts import ApiKey
    from orchestrator.emulator.core import Emulator

    data = persist.load(project / SANDBOX_PATH)
    options = {"time_scale": 30.0, "latency_spike_s": 0.01, **options}
    return Emulator(
        project / SANDBOX_PATH,
        master=ApiKey.from_json(data["master"]),
        persist_master=True,
        **options,
    )
