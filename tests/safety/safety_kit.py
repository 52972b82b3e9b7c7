"""Safety judged from outside the tool: the sandbox's live keys, and the bytes bots are handed.

Nothing here reads the orchestrator's state, journal or sink classes. A key is live when the
emulator's data file lists it; material belongs to a key when it is that key's HMAC secret or
the private half of its registered public key; a bot's key works when a request signed with
the material in its sink's bot-facing slot is accepted by the emulator, from the bot's IP.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization

from tests import pg_kit

PLAN = "plans/example.yaml"
SANDBOX_FILES = ("sandbox.json", "sandbox.json.journal")
ANY_IP = "127.0.0.1"
PEM_BLOCK = re.compile(
    r"-----BEGIN (?:[A-Z0-9 ]+ )?PRIVATE KEY-----.+?-----END (?:[A-Z0-9 ]+ )?PRIVATE KEY-----",
    re.DOTALL,
)
SECRET_FIELD = re.compile(r"(?i)secret")


# ---------------------------------------------------------------- running the CLI


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without credentials or test knobs, running the code under test."""
    import orchestrator

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BINANCE_", "ORCHESTRATOR_", "PYTEST_"))
    }
    env["PYTHONPATH"] = str(Path(orchestrator.__file__).resolve().parents[1])
    env["ORCHESTRATOR_PG_DSN"] = pg_kit.test_dsn()  # used only by a plan naming postgres
    env.update(extra)
    return env


def run(
    project: Path, *args: str, now: datetime | None = None, **env: str
) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in its own process, with the clock at `now` if given."""
    if now is not None:
        env["ORCHESTRATOR_NOW"] = now.isoformat()
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=project,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(project: Path, *args: str, now: datetime | None = None, **env: str) -> str:
    """Run the CLI and insist it succeeds; its output."""
    done = run(project, *args, now=now, **env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{output}"
    assert "Traceback" not in output, output
    return output


def later(hours: float, start: datetime | None = None) -> datetime:
    return (start or datetime.now(UTC)) + timedelta(hours=hours)


def plan_lines(output: str, address: str) -> list[str]:
    """The change lines of a plan output that name `address`."""
    return [line for line in output.splitlines() if re.search(rf"\s{re.escape(address)}\b", line)]


# ---------------------------------------------------------------- the plan, read as YAML


@dataclass(frozen=True)
class PlannedKey:
    subaccount: str
    label: str
    sink: str
    ips: tuple[str, ...]

    @property
    def address(self) -> str:
        return f"{self.subaccount}/{self.label}"

    @property
    def bot_ip(self) -> str:
        return self.ips[0] if self.ips else ANY_IP


def planned_keys(project: Path, plan: str = PLAN) -> list[PlannedKey]:
    data = yaml.safe_load((project / plan).read_text())
    defaults = data.get("defaults") or {}
    return [
        PlannedKey(
            sub["name"],
            key["label"],
            key.get("secrets", defaults.get("secrets", "file:secrets/")),
            tuple(key.get("ips", defaults.get("ips", []))),
        )
        for sub in data.get("subaccounts") or []
        for key in sub.get("keys") or []
    ]


def edit_plan(project: Path, old: str, new: str, plan: str = PLAN) -> None:
    path = project / plan
    text = path.read_text()
    assert old in text, f"{old!r} not in {plan}"
    path.write_text(text.replace(old, new))


# ---------------------------------------------------------------- the live account


@dataclass(frozen=True)
class LiveKey:
    email: str
    api_key: str
    api_name: str
    key_type: str
    secret: str | None
    public_key: str | None
    flags: tuple[tuple[str, bool], ...]

    def is_orc(self) -> bool:
        return self.api_name.startswith("orc-")

    def generation_of(self, label: str) -> int | None:
        """N when this is an orchestrator key for `label` (`orc-<label>-gN`, or with an owner
        before the label: `orc-<owner>.<label>-gN`), else None."""
        found = re.search(rf"^orc-(?:.*[.-])?{re.escape(label)}-g(\d+)$", self.api_name)
        return int(found.group(1)) if found else None

    def public_raw(self) -> bytes | None:
        if not self.public_key:
            return None
        return _raw_public(serialization.load_pem_public_key(self.public_key.encode()))


def live_keys(project: Path) -> list[LiveKey]:
    """Every sub-account key the sandbox holds, read from its data file (and journal)."""
    from orchestrator.emulator import persist

    data = persist.load(project / "state" / SANDBOX_FILES[0]) or {}
    return [
        LiveKey(
            sub["email"],
            key["api_key"],
            key["api_name"],
            key["key_type"],
            key.get("secret"),
            key.get("public_key"),
            tuple(sorted(key.get("flags", {}).items())),
        )
        for sub in data.get("subAccounts", [])
        for key in sub.get("keys", [])
    ]


def live_orc_keys(project: Path) -> dict[str, list[LiveKey]]:
    """Every live key whose apiName starts with `orc-`, per sub-account email."""
    found: dict[str, list[LiveKey]] = {}
    for key in live_keys(project):
        if key.is_orc():
            found.setdefault(key.email, []).append(key)
    return found


def generations(project: Path, label: str) -> dict[int, LiveKey]:
    """The live orchestrator keys of `label`, by generation."""
    found = {}
    for key in live_keys(project):
        generation = key.generation_of(label)
        if generation is not None:
            found[generation] = key
    return found


def live_api_keys(project: Path) -> set[str]:
    return {key.api_key for key in live_keys(project)}


# ---------------------------------------------------------------- material on disk


@dataclass(frozen=True)
class Material:
    """A secret found on disk: an HMAC secret, or a private key PEM."""

    where: Path
    kind: str  # "hmac" | "private_key"
    value: str
    api_key: str | None = None

    def belongs_to(self, key: LiveKey) -> bool:
        if self.kind == "hmac":
            return key.secret is not None and key.secret == self.value
        return key.public_raw() is not None and key.public_raw() == _public_of_pem(self.value)

    def owner(self, keys: Iterable[LiveKey]) -> LiveKey | None:
        return next((key for key in keys if self.belongs_to(key)), None)


def _raw_public(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public_of_pem(pem: str) -> bytes | None:
    try:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return None
    return _raw_public(private.public_key())


def project_files(project: Path) -> Iterator[Path]:
    """Every file the tool may have written, but the exchange's own data (the sandbox)."""
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if not path.is_file() or relative.parts[0] in (".git", "plans"):
            continue
        if relative.parts[0] == "state" and path.name in SANDBOX_FILES:
            continue
        yield path


def materials_in(path: Path) -> list[Material]:
    """The secrets a file holds: PEM private keys anywhere in it (JSON-escaped or not), and
    values of fields whose name says secret (JSON, JSON lines or dotenv)."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    documents = _json_documents(text)
    fields = [f for doc in documents for f in _string_fields(doc)] or _dotenv_fields(text)
    api_key = next((v for k, v in fields if k in ("apiKey", "BINANCE_API_KEY")), None)
    found = {
        Material(path, "hmac", value, api_key)
        for name, value in fields
        if SECRET_FIELD.search(name) and value and "PRIVATE KEY" not in value
    }
    for candidate in [text, *(value for _, value in fields)]:
        found |= {
            Material(path, "private_key", block, api_key)
            for block in PEM_BLOCK.findall(candidate)
            if _public_of_pem(block) is not None  # a JSON-escaped copy is read as JSON
        }
    return sorted(found, key=lambda m: (m.kind, m.value))


def _json_documents(text: str) -> list:
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    documents = []
    for line in text.splitlines():
        try:
            documents.append(json.loads(line))
        except ValueError:
            continue
    return documents


def _string_fields(document, name: str = "") -> Iterator[tuple[str, str]]:
    """(field name, value) of every string in a JSON document, however deep."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _string_fields(value, str(key))
    elif isinstance(document, list):
        for item in document:
            yield from _string_fields(item, name)
    elif isinstance(document, str):
        yield name, document


def _dotenv_fields(text: str) -> list[tuple[str, str]]:
    fields = []
    for line in text.splitlines():
        name, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and name and not name.startswith("#"):
            fields.append((name.strip(), value.strip().strip("'\"")))
    return fields


def all_materials(project: Path) -> list[Material]:
    return [m for path in project_files(project) for m in materials_in(path)]


def material_of_dead_keys(project: Path, known_secrets: Iterable[str] = ()) -> list[str]:
    """Files under the project that hold a secret or private key of no live key: the secrets
    the files show, and any of `known_secrets` (seen earlier) found in their bytes."""
    live = live_keys(project)
    live_secrets = {k.secret for k in live if k.secret}
    problems = [
        f"{m.where.relative_to(project)} holds a {m.kind} of no live key"
        for m in all_materials(project)
        if m.owner(live) is None
    ]
    dead_secrets = {s for s in known_secrets if s not in live_secrets and "PRIVATE KEY" not in s}
    for path in project_files(project):
        raw = path.read_bytes()
        if any(secret.encode() in raw for secret in dead_secrets):
            problems.append(f"{path.relative_to(project)} holds a secret of a deleted key")
    return problems


def sink_secrets(project: Path) -> set[str]:
    """Every secret on disk now, to look for again once its key is gone."""
    return {m.value for m in all_materials(project)}


def keys_without_material(project: Path) -> list[str]:
    """Live `orc-` keys whose secret or private key no file under the project holds."""
    materials = all_materials(project)
    return [
        f"{key.api_name} in {key.email} has no material on disk"
        for keys in live_orc_keys(project).values()
        for key in keys
        if not any(m.belongs_to(key) for m in materials)
    ]


def holds_material_of(project: Path, key: LiveKey, under: str = "") -> bool:
    return any(m.belongs_to(key) for m in all_materials(project) if under in str(m.where))


# ---------------------------------------------------------------- what a bot is handed


@dataclass(frozen=True)
class BotMaterial:
    """What a bot loads from its sink's bot-facing slot."""

    api_key: str
    material: Material


def bot_material(project: Path, key: PlannedKey) -> BotMaterial | None:
    kind, _, target = key.sink.partition(":")
    if kind == "file":
        return _file_slot(project / target / key.subaccount / f"{key.label}.json")
    if kind == "dotenv":
        return _dotenv_slot(project, project / target)
    raise AssertionError(f"the safety kit does not read {key.sink!r} sinks")


def _file_slot(path: Path) -> BotMaterial | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("private_key"):
        return BotMaterial(data["apiKey"], Material(path, "private_key", data["private_key"]))
    return BotMaterial(data["apiKey"], Material(path, "hmac", data["secret"]))


def _dotenv_slot(project: Path, path: Path) -> BotMaterial | None:
    if not path.is_file():
        return None
    fields = dict(_dotenv_fields(path.read_text()))
    api_key = fields.get("BINANCE_API_KEY", "")
    if fields.get("BINANCE_API_SECRET"):
        return BotMaterial(api_key, Material(path, "hmac", fields["BINANCE_API_SECRET"]))
    pem = project / fields.get("BINANCE_PRIVATE_KEY_PATH", "")
    if not pem.is_file():
        return None
    return BotMaterial(api_key, Material(pem, "private_key", pem.read_text()))


@dataclass(frozen=True)
class Verdict:
    problems: tuple[str, ...]

    def __bool__(self) -> bool:
        return not self.problems


def bots_keys_work(project: Path, plan: str = PLAN) -> Verdict:
    """For every key in the plan, its bot-facing material belongs to a live key, and a
    request signed with it from the bot's IP is accepted."""
    live = {key.api_key: key for key in live_keys(project)}
    problems = []
    for planned in planned_keys(project, plan):
        handed = bot_material(project, planned)
        if handed is None:
            problems.append(f"{planned.address}: the sink hands the bot no material")
        elif handed.api_key not in live:
            problems.append(f"{planned.address}: the bot holds a key that is not live")
        elif not handed.material.belongs_to(live[handed.api_key]):
            problems.append(f"{planned.address}: the bot's secret is not its key's")
        else:
            refusal = signed_call_refusal(project, handed, planned.bot_ip)
            if refusal:
                problems.append(f"{planned.address}: a signed request is refused: {refusal}")
    return Verdict(tuple(problems))


def signed_call_refusal(project: Path, handed: BotMaterial, ip: str) -> str | None:
    """None when the emulator accepts apiRestrictions signed with the material from `ip`."""
    from pydantic import SecretStr

    from orchestrator.emulator.transport import EmulatorTransport
    from orchestrator.exchange.client import BinanceClient
    from orchestrator.exchange.signing import HmacSigner, from_pem
    from orchestrator.wiring import SANDBOX_URL, open_sandbox

    quiet_logs()
    material = handed.material
    if material.kind == "hmac":
        signer = HmacSigner(handed.api_key, SecretStr(material.value))
    else:
        signer = from_pem(handed.api_key, material.value.encode())
    emulator = open_sandbox(project / "state" / SANDBOX_FILES[0])
    master = HmacSigner(emulator.master.api_key, SecretStr(emulator.master.secret or ""))

    async def call() -> None:
        transport = EmulatorTransport(emulator, client_ip=ip)
        async with BinanceClient(SANDBOX_URL, master, transport=transport) as client:
            await client.api_restrictions(signer)

    try:
        asyncio.run(call())
    except Exception as exc:  # any refusal is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def bot_holds_current_generation(project: Path, plan: str = PLAN) -> list[str]:
    """Labels whose bot-facing material is not their highest live generation."""
    problems = []
    for planned in planned_keys(project, plan):
        handed = bot_material(project, planned)
        live = generations(project, planned.label)
        if live and (handed is None or handed.api_key != live[max(live)].api_key):
            problems.append(f"{planned.address}: the bot does not hold g{max(live)}")
    return problems


# ---------------------------------------------------------------- changes made outside the tool


def quiet_logs() -> None:
    """Warnings only from the client the kit drives (not one line per call)."""
    from orchestrator.logs import configure

    configure(verbose=False)


def _with_master(project: Path, action) -> None:
    from orchestrator.config import ExchangeSettings
    from orchestrator.wiring import open_exchange

    quiet_logs()

    async def go() -> None:
        async with open_exchange(ExchangeSettings(), project) as client:
            await action(client)

    asyncio.run(go())


def delete_out_of_band(project: Path, key: LiveKey) -> None:
    """Delete a key the way someone in the web UI would."""
    _with_master(project, lambda client: client.delete_api_key(key.email, key.api_key))


def widen_out_of_band(project: Path, key: LiveKey, permission: str) -> None:
    """Grant a permission nobody planned (what a thief with the master key would do)."""
    from orchestrator.exchange.models import Permission, permissions_from_flags

    granted = permissions_from_flags(dict(key.flags)) | {Permission(permission)}
    _with_master(project, lambda client: client.set_permissions(key.email, key.api_key, granted))


def make_key_out_of_band(project: Path, email: str, api_name: str) -> str:
    """A read-only HMAC key made outside the tool; its api key."""
    made: list[str] = []

    async def create(client) -> None:
        created = await client.create_api_key(email, api_name, frozenset(), [])
        made.append(created.api_key)

    _with_master(project, create)
    return made[0]


# ---------------------------------------------------------------- snapshots


def file_bytes(project: Path) -> dict[str, bytes]:
    """Every file the tool may write (state, journal, sinks), by relative path."""
    return {str(path.relative_to(project)): path.read_bytes() for path in project_files(project)}


# ---------------------------------------------------------------- injected faults


def run_with_fault(
    project: Path, args: list[str], kind: str, endpoint: str, now: datetime
) -> tuple[int, str]:
    """Run the CLI in this process against the project's sandbox with one fault queued on
    `endpoint` (see orchestrator/emulator/faults.py); (exit code, output)."""
    import contextlib
    from unittest import mock

    import structlog
    from typer.testing import CliRunner

    from orchestrator.cli import app
    from orchestrator.wiring import Wiring, open_sandbox

    emulator = open_sandbox(project / "state" / SANDBOX_FILES[0])
    emulator.inject(kind, endpoint)
    with contextlib.chdir(project), mock.patch.dict(os.environ, clean_env(), clear=True):
        os.environ["ORCHESTRATOR_NOW"] = now.isoformat()
        result = CliRunner().invoke(
            app, args, catch_exceptions=False, obj=Wiring.with_sandbox(emulator)
        )
    structlog.reset_defaults()
    return result.exit_code, result.output
