"""A renamed label's material is filed under its new address on every sink, with the bot-facing
key readable at every step, re-runnable after a crash at any step, and nothing left behind."""

import json
import os
from pathlib import Path

import httpx
import pytest
import respx
from fake_vault import FakeKV2
from sink_material import CANARY, make_material

from orchestrator.sinks import SinkConflict, UnsafeSinkPath, VaultError, open_sink
from orchestrator.sinks.dotenv import parse_dotenv

OLD, NEW = "quant/Bot", "quant/Main"
LOCAL_SINKS = [
    pytest.param("file:secrets/", "hmac", id="file-hmac"),
    pytest.param("file:secrets/", "ed25519", id="file-ed25519"),
    pytest.param("dotenv:bots/copy.env", "hmac", id="dotenv-hmac"),
    pytest.param("dotenv:bots/copy.env", "ed25519", id="dotenv-ed25519"),
]
VAULT_ADDR = "https://vault.example:8200"
VAULT_ENV = {"VAULT_ADDR": VAULT_ADDR, "VAULT_TOKEN": "hvs.TOKEN-CANARY-1234567890"}


class Crash(Exception):
    """The process dies here."""


def api_key(generation: int) -> str:
    return f"{'K' * 60}G{generation:03d}"


def secret_of(generation: int, key_type: str) -> str:
    return make_material(generation, key_type).secret.get_secret_value()


def material(generation: int, key_type: str, label: str = "Bot"):
    return make_material(generation, key_type, label=label, api_key=api_key(generation))


def populate(sink, key_type: str) -> None:
    """Generation 3 current, 1 and 2 held, 4 pending: all under the old address."""
    for generation in (1, 2, 3):
        sink.write_pending(material(generation, key_type))
        sink.promote(OLD, generation)
    sink.write_pending(material(4, key_type))


def assert_renamed(sink, key_type: str) -> None:
    current = sink.read_current(NEW)
    assert (current.label, current.address, current.api_key) == ("Main", NEW, api_key(3))
    assert current.secret.get_secret_value() == secret_of(3, key_type)
    held = sink.read_held(NEW)
    assert [(m.generation, m.api_key, m.address) for m in held] == [
        (1, api_key(1), NEW),
        (2, api_key(2), NEW),
    ]
    assert [m.secret.get_secret_value() for m in held] == [
        secret_of(1, key_type),
        secret_of(2, key_type),
    ]
    pending = sink.read_pending(NEW)
    assert (pending.address, pending.generation, pending.api_key) == (NEW, 4, api_key(4))
    assert pending.secret.get_secret_value() == secret_of(4, key_type)
    assert sink.read_current(OLD) is None and not sink.exists(OLD)
    assert sink.read_held(OLD) == [] and sink.read_pending(OLD) is None


def files_holding(root: Path, needle: str) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes())


def bot_facing(root: Path, spec: str) -> set[tuple[str, str]]:
    """(api key, secret) a bot can read right now: from `<sub>/<label>.json` under either
    name for the file sink, from the one dotenv file (and the PEM it names) for dotenv."""
    if spec.startswith("file:"):
        found = set()
        for name in ("Bot", "Main"):
            try:
                data = json.loads((root / f"secrets/quant/{name}.json").read_bytes())
            except FileNotFoundError:
                continue
            found.add((data["apiKey"], data.get("secret") or data["private_key"]))
        return found
    values = parse_dotenv((root / "bots/copy.env").read_text())
    secret = values.get("BINANCE_API_SECRET")
    if secret is None:
        secret = Path(values["BINANCE_PRIVATE_KEY_PATH"]).read_text()
    return {(values["BINANCE_API_KEY"], secret)}


def assert_no_copy_under_old_name(root: Path, spec: str) -> None:
    holding = files_holding(root, CANARY)
    assert holding
    if spec.startswith("file:"):
        assert [p.name for p in holding if p.name.startswith("Bot")] == []
    assert files_holding(root, OLD) == []


@pytest.mark.parametrize(("spec", "key_type"), LOCAL_SINKS)
def test_round_trip_files_every_generation_under_the_new_name(tmp_path, spec, key_type):
    sink = open_sink(spec, tmp_path)
    populate(sink, key_type)
    sink.rename(OLD, NEW)
    assert_renamed(sink, key_type)
    assert bot_facing(tmp_path, spec) == {(api_key(3), secret_of(3, key_type))}
    assert_no_copy_under_old_name(tmp_path, spec)

    sink.rename(OLD, NEW)  # twice: nothing under the old name, nothing to do
    assert_renamed(sink, key_type)

    sink.promote(NEW, 4)
    assert [m.generation for m in sink.read_held(NEW)] == [1, 2, 3]
    for generation in (1, 2, 3, 4):
        sink.destroy(NEW, api_key(generation))
    assert files_holding(tmp_path, CANARY) == []


@pytest.mark.parametrize(("spec", "key_type"), LOCAL_SINKS)
def test_a_crash_at_any_step_leaves_the_bot_a_key_and_a_rerun_finishes(
    tmp_path, monkeypatch, spec, key_type
):
    expected = (api_key(3), secret_of(3, key_type))
    steps = count_steps(tmp_path / "count", spec, key_type, monkeypatch)
    assert steps >= 3
    for crash_at in range(steps):
        root = tmp_path / f"crash-{crash_at}"
        sink = open_sink(spec, root)
        populate(sink, key_type)
        with monkeypatch.context() as patch, pytest.raises(Crash):
            watch_steps(patch, lambda root=root: expected in bot_facing(root, spec), crash_at)
            sink.rename(OLD, NEW)
        assert expected in bot_facing(root, spec)
        rerun = open_sink(spec, root)
        rerun.rename(OLD, NEW)
        assert_renamed(rerun, key_type)
        assert_no_copy_under_old_name(root, spec)


def count_steps(root: Path, spec: str, key_type: str, monkeypatch) -> int:
    """How many file replaces and unlinks one rename makes, checking the bot's key around each."""
    sink = open_sink(spec, root)
    populate(sink, key_type)
    expected = (api_key(3), secret_of(3, key_type))
    with monkeypatch.context() as patch:
        steps = watch_steps(patch, lambda: expected in bot_facing(root, spec))
        sink.rename(OLD, NEW)
    return len(steps)


def watch_steps(patch, bot_has_key, crash_at: int | None = None) -> list[str]:
    """Wrap os.replace and Path.unlink (every write and removal the sinks make): assert the bot
    still has its key before and after each; raise Crash instead of step `crash_at`."""
    steps: list[str] = []
    real_replace, real_unlink = os.replace, Path.unlink

    def step(name: str, do) -> None:
        assert bot_has_key(), f"the bot had no key before step {len(steps)} ({name})"
        if len(steps) == crash_at:
            raise Crash(name)
        steps.append(name)
        do()
        assert bot_has_key(), f"the bot had no key after step {len(steps) - 1} ({name})"

    def replace(src, dst, **kwargs):
        step(f"replace {Path(dst).name}", lambda: real_replace(src, dst, **kwargs))

    def unlink(path, missing_ok=False):
        if not path.exists() and not path.is_symlink():
            return real_unlink(path, missing_ok=missing_ok)
        step(f"unlink {path.name}", lambda: real_unlink(path, missing_ok=missing_ok))
        return None

    patch.setattr(os, "replace", replace)
    patch.setattr(Path, "unlink", unlink)
    return steps


def test_file_sink_writes_every_new_file_before_removing_an_old_one(tmp_path, monkeypatch):
    sink = open_sink("file:secrets/", tmp_path)
    populate(sink, "hmac")
    with monkeypatch.context() as patch:
        steps = watch_steps(patch, lambda: True)
        sink.rename(OLD, NEW)
    first_unlink = next(i for i, name in enumerate(steps) if name.startswith("unlink"))
    assert all(name.startswith("replace Main") for name in steps[:first_unlink])
    assert all(name.startswith("unlink Bot") for name in steps[first_unlink:])
    assert len(steps) == 8  # current, pending, two held: written, then removed


def test_file_sink_finishes_when_a_crash_left_both_names(tmp_path):
    sink = open_sink("file:secrets/", tmp_path)
    populate(sink, "hmac")
    key_dir = tmp_path / "secrets/quant"
    before = {p.name: p.read_bytes() for p in key_dir.iterdir()}
    sink.rename(OLD, NEW)
    for name, content in before.items():  # the old files back: as if the unlinks never ran
        (key_dir / name).write_bytes(content)
    sink.rename(OLD, NEW)
    assert_renamed(sink, "hmac")
    assert sorted(p.name for p in key_dir.iterdir()) == [
        "Main.g1.json",
        "Main.g2.json",
        "Main.json",
        "Main.pending.json",
    ]


def test_file_sink_never_overwrites_another_key_under_the_new_name(tmp_path):
    sink = open_sink("file:secrets/", tmp_path)
    populate(sink, "hmac")
    other = make_material(1, "hmac", label="Main", api_key=api_key(9))
    stranger = tmp_path / "secrets/quant/Main.g1.json"
    stranger.write_text(json.dumps(file_json(other)))
    with pytest.raises(SinkConflict) as caught:
        sink.rename(OLD, NEW)
    assert CANARY not in str(caught.value)
    assert json.loads(stranger.read_bytes())["apiKey"] == api_key(9)
    assert sink.read_current(OLD).api_key == api_key(3)
    assert [m.generation for m in sink.read_held(OLD)] == [1, 2]
    assert sorted(p.name for p in stranger.parent.glob("Main*")) == ["Main.g1.json"]


def file_json(material) -> dict:
    from orchestrator.sinks.filesink import material_to_json

    return material_to_json(material)


def test_file_sink_checks_the_new_paths_like_any_write(tmp_path):
    sink = open_sink("file:secrets/", tmp_path)
    populate(sink, "hmac")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "secrets/quant/Main.json").symlink_to(tmp_path / "elsewhere/Main.json")
    with pytest.raises(UnsafeSinkPath, match="symlink"):
        sink.rename(OLD, NEW)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert sink.read_current(OLD).api_key == api_key(3)


def test_file_sink_renames_across_sub_accounts(tmp_path):
    sink = open_sink("file:secrets/", tmp_path)
    populate(sink, "hmac")
    sink.rename(OLD, "spot/Main")
    assert sink.read_current("spot/Main").subaccount == "spot"
    assert [m.generation for m in sink.read_held("spot/Main")] == [1, 2]
    assert sink.read_current(OLD) is None
    assert (tmp_path / "secrets/spot").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("key_type", ["hmac", "ed25519"])
def test_dotenv_keeps_the_bot_lines_and_the_paths(tmp_path, key_type):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    populate(sink, key_type)
    bots = tmp_path / "bots"
    before = {p.name: p.read_text() for p in bots.iterdir()}
    sink.rename(OLD, NEW)
    after = {p.name: p.read_text() for p in bots.iterdir()}
    assert sorted(after) == sorted(before)
    for name, text in before.items():
        kept = [line for line in text.splitlines() if "quant/" not in line]
        assert [line for line in after[name].splitlines() if "quant/" not in line] == kept
        if not name.endswith(".pem"):
            assert "ORCHESTRATOR_ADDRESS=quant/Main" in after[name].splitlines()
            assert after[name].startswith("# Managed by orchestrator: quant/Main generation")


def test_dotenv_claim_moves_to_the_new_address(tmp_path):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    populate(sink, "hmac")
    sink.check(OLD)
    sink.rename(OLD, NEW)
    sink.check(NEW)
    with pytest.raises(SinkConflict, match="both"):
        sink.check(OLD)
    sink.promote(NEW, 4)  # the rest of the run works under the new address
    sink.write_pending(material(5, "hmac", label="Main"))
    assert sink.read_pending(NEW).generation == 5
    with pytest.raises(SinkConflict):
        sink.write_pending(material(6, "hmac"))


def test_dotenv_refuses_a_file_of_a_third_key(tmp_path):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    populate(sink, "hmac")
    held = tmp_path / "bots/copy.env.g1"
    held.write_text(held.read_text().replace("quant/Bot", "quant/Other"))
    with pytest.raises(SinkConflict, match="quant/Other"):
        open_sink("dotenv:bots/copy.env", tmp_path).rename(OLD, NEW)
    assert "quant/Main" not in "".join(p.read_text() for p in (tmp_path / "bots").iterdir())


def test_dotenv_claimed_by_another_address_refuses_the_rename(tmp_path):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    populate(sink, "hmac")
    sink.check(OLD)
    with pytest.raises(SinkConflict):
        sink.rename("quant/Other", NEW)
    assert sink.read_current(OLD).api_key == api_key(3)


# Vault


@pytest.fixture
def kv():
    fake = FakeKV2()
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=f"{VAULT_ADDR}/v1/secret/").mock(side_effect=fake.handle)
        yield fake


@pytest.fixture
def vault(tmp_path):
    return open_sink("vault:secret/orc", tmp_path, env=VAULT_ENV)


def vault_paths_named(kv: FakeKV2, name: str) -> list[str]:
    """The secrets (with metadata: any version, live or destroyed) under `orc/quant/<name>`."""
    return sorted(
        p for p, versions in kv.secrets.items() if versions and p.startswith(f"orc/quant/{name}")
    )


@pytest.mark.parametrize("key_type", ["hmac", "ed25519"])
def test_vault_round_trip(kv, vault, key_type):
    populate(vault, key_type)
    vault.rename(OLD, NEW)
    assert_renamed(vault, key_type)
    assert vault_paths_named(kv, "Bot") == []  # versions destroyed, metadata deleted
    assert vault_paths_named(kv, "Main") == [
        "orc/quant/Main",
        "orc/quant/Main/g1",
        "orc/quant/Main/g2",
    ]
    assert {path for path, _ in kv.holding(CANARY)} == set(vault_paths_named(kv, "Main"))
    assert kv.holding('"label": "Bot"') == []

    writes = len(kv.requests)
    vault.rename(OLD, NEW)  # nothing under the old path: nothing to do
    assert [r.method for r in kv.requests[writes:]] == ["GET", "GET"]
    assert_renamed(vault, key_type)

    vault.promote(NEW, 4)
    assert [m.generation for m in vault.read_held(NEW)] == [1, 2, 3]
    for generation in (1, 2, 3, 4):
        vault.destroy(NEW, api_key(generation))
    assert kv.holding(CANARY) == []


def test_vault_a_crash_at_any_write_leaves_the_bot_a_key_and_a_rerun_finishes(tmp_path):
    crash_at = 0
    while crash_after_writes(tmp_path, crash_at):
        crash_at += 1
    assert crash_at >= 6


class CrashingKV2(FakeKV2):
    """Dies instead of the `crash_at`-th write once armed; checks the bot's key before each."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at, self.writes, self.armed = crash_at, 0, False
        self.vault = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method in ("POST", "DELETE") and self.armed:
            assert bot_reads(self.vault) == (api_key(3), secret_of(3, "hmac"))
            if self.writes == self.crash_at:
                raise httpx.ConnectError("the process died")
            self.writes += 1
        return super().handle(request)


def crash_after_writes(tmp_path: Path, crash_at: int) -> bool:
    """Rename with a crash at write `crash_at`, then again; False when there was no crash."""
    fake = CrashingKV2(crash_at)
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=f"{VAULT_ADDR}/v1/secret/").mock(side_effect=fake.handle)
        fake.vault = vault = open_sink("vault:secret/orc", tmp_path, env=VAULT_ENV)
        populate(vault, "hmac")
        fake.armed = True
        try:
            vault.rename(OLD, NEW)
        except VaultError:
            fake.armed = False
            assert bot_reads(vault) == (api_key(3), secret_of(3, "hmac"))
            vault.rename(OLD, NEW)
        else:
            return False
        assert_renamed(vault, "hmac")
        assert vault_paths_named(fake, "Bot") == []
    return True


def bot_reads(vault) -> tuple[str, str]:
    """What a bot configured for either name reads."""
    found = vault.read_current(NEW) or vault.read_current(OLD)
    return (found.api_key, found.secret.get_secret_value())


def test_vault_finishes_when_a_crash_left_both_paths(kv, vault):
    populate(vault, "hmac")
    old = {path: dict(versions) for path, versions in kv.secrets.items()}
    vault.rename(OLD, NEW)
    kv.secrets.update(old)  # the old secrets back: as if the destroys never ran
    vault.rename(OLD, NEW)
    assert_renamed(vault, "hmac")
    assert vault_paths_named(kv, "Bot") == []
    main_writes = [v for v in kv.secrets["orc/quant/Main"].values() if v is not None]
    assert [v["status"] for v in main_writes] == ["current", "pending"]  # nothing written twice


def test_vault_never_overwrites_another_key_under_the_new_path(kv, vault):
    populate(vault, "hmac")
    vault.write_pending(make_material(3, label="Main", api_key=api_key(9)))
    vault.promote(NEW, 3)
    with pytest.raises(SinkConflict) as caught:
        vault.rename(OLD, NEW)
    assert CANARY not in str(caught.value)
    assert vault.read_current(NEW).api_key == api_key(9)
    assert vault.read_current(OLD).api_key == api_key(3)
    assert [m.generation for m in vault.read_held(OLD)] == [1, 2]
    assert vault.read_pending(OLD).generation == 4


def test_vault_rename_of_a_key_with_only_pending_material(kv, vault):
    vault.write_pending(material(1, "ed25519"))
    vault.rename(OLD, NEW)
    assert vault.read_pending(NEW).secret.get_secret_value() == secret_of(1, "ed25519")
    assert vault.read_current(NEW) is None
    vault.promote(NEW, 1)
    assert vault.read_current(NEW).address == NEW
    assert vault_paths_named(kv, "Bot") == []
