"""Every generation in grace keeps its material; a deleted generation leaves none behind."""

from pathlib import Path

import pytest
from sink_material import CANARY, make_material

from orchestrator.sinks import NoSuchGeneration, SinkConflict, open_sink

ADDRESS = "quant/Bot"
SINKS = [
    pytest.param("file:secrets/", "hmac", id="file-hmac"),
    pytest.param("file:secrets/", "ed25519", id="file-ed25519"),
    pytest.param("dotenv:bots/copy.env", "hmac", id="dotenv-hmac"),
    pytest.param("dotenv:bots/copy.env", "ed25519", id="dotenv-ed25519"),
]


def api_key(generation: int) -> str:
    return f"{'K' * 60}G{generation:03d}"


def store(sink, generation: int, key_type: str) -> None:
    sink.write_pending(make_material(generation, key_type, api_key=api_key(generation)))
    sink.promote(ADDRESS, generation)


def generations(materials) -> list[int]:
    return [m.generation for m in materials]


def files_holding(root: Path, needle: str) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes())


def secret_of(generation: int, key_type: str) -> str:
    return make_material(generation, key_type).secret.get_secret_value()


@pytest.mark.parametrize(("spec", "key_type"), SINKS)
def test_two_promotes_in_grace_keep_both_older_generations(tmp_path, spec, key_type):
    sink = open_sink(spec, tmp_path)
    for generation in (1, 2, 3):
        store(sink, generation, key_type)
    assert sink.read_current(ADDRESS).generation == 3
    held = sink.read_held(ADDRESS)
    assert generations(held) == [1, 2]
    assert [m.api_key for m in held] == [api_key(1), api_key(2)]
    assert [m.secret.get_secret_value() for m in held] == [
        secret_of(1, key_type),
        secret_of(2, key_type),
    ]


@pytest.mark.parametrize(("spec", "key_type"), SINKS)
def test_promote_rerun_after_a_crash_keeps_every_generation(tmp_path, spec, key_type):
    sink = open_sink(spec, tmp_path)
    store(sink, 1, key_type)
    store(sink, 2, key_type)
    sink.promote(ADDRESS, 2)
    assert generations(sink.read_held(ADDRESS)) == [1]
    assert sink.read_current(ADDRESS).generation == 2


@pytest.mark.parametrize(("spec", "key_type"), SINKS)
def test_make_current_round_trip(tmp_path, spec, key_type):
    sink = open_sink(spec, tmp_path)
    for generation in (1, 2, 3):
        store(sink, generation, key_type)
    sink.make_current(ADDRESS, 1)
    assert sink.read_current(ADDRESS).api_key == api_key(1)
    assert sink.read_current(ADDRESS).secret.get_secret_value() == secret_of(1, key_type)
    assert generations(sink.read_held(ADDRESS)) == [2, 3]
    sink.make_current(ADDRESS, 1)  # a re-run: already current
    sink.make_current(ADDRESS, 3)
    assert sink.read_current(ADDRESS).generation == 3
    assert generations(sink.read_held(ADDRESS)) == [1, 2]
    with pytest.raises(NoSuchGeneration):
        sink.make_current(ADDRESS, 7)


@pytest.mark.parametrize(("spec", "key_type"), SINKS)
def test_destroy_leaves_no_byte_of_the_secret(tmp_path, spec, key_type):
    sink = open_sink(spec, tmp_path)
    for generation in (1, 2, 3):
        store(sink, generation, key_type)
    sink.destroy(ADDRESS, api_key(1))
    sink.destroy(ADDRESS, api_key(1))  # idempotent
    assert generations(sink.read_held(ADDRESS)) == [2]
    assert files_holding(tmp_path, secret_of(1, key_type)) == []
    assert files_holding(tmp_path, api_key(1)) == []

    sink.destroy(ADDRESS, api_key(3))  # the current one: the bot-facing slot goes too
    assert sink.read_current(ADDRESS) is None and not sink.exists(ADDRESS)
    assert files_holding(tmp_path, secret_of(3, key_type)) == []
    sink.destroy(ADDRESS, api_key(2))
    assert files_holding(tmp_path, CANARY) == []
    assert sink.read_held(ADDRESS) == []


@pytest.mark.parametrize(("spec", "key_type"), SINKS)
def test_destroy_reaches_pending_material(tmp_path, spec, key_type):
    sink = open_sink(spec, tmp_path)
    store(sink, 1, key_type)
    sink.write_pending(make_material(2, key_type, api_key=api_key(2)))
    sink.destroy(ADDRESS, api_key(2))
    assert sink.read_pending(ADDRESS) is None
    assert files_holding(tmp_path, secret_of(2, key_type)) == []
    assert sink.read_current(ADDRESS).generation == 1


@pytest.mark.parametrize(("spec", "key_type"), SINKS)
def test_destroy_after_make_current_keeps_the_bot_facing_key(tmp_path, spec, key_type):
    sink = open_sink(spec, tmp_path)
    store(sink, 1, key_type)
    store(sink, 2, key_type)
    sink.make_current(ADDRESS, 1)
    sink.destroy(ADDRESS, api_key(2))
    assert sink.read_current(ADDRESS).secret.get_secret_value() == secret_of(1, key_type)
    assert sink.read_held(ADDRESS) == []
    assert files_holding(tmp_path, secret_of(2, key_type)) == []


def test_dotenv_refuses_a_second_private_key_for_a_held_generation(tmp_path):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    store(sink, 1, "ed25519")
    store(sink, 2, "ed25519")
    other = make_material(1, "ed25519", api_key=api_key(9))
    other = type(other)(**{**other.__dict__, "secret": "-----BEGIN PRIVATE KEY-----\nX\n"})
    with pytest.raises(SinkConflict, match="generation 1"):
        sink.write_pending(other)
    assert sink.read_held(ADDRESS)[0].secret.get_secret_value() == secret_of(1, "ed25519")


def test_file_sink_reads_the_old_previous_slot(tmp_path):
    sink = open_sink("file:secrets/", tmp_path)
    store(sink, 1, "hmac")
    store(sink, 2, "hmac")
    key_dir = tmp_path / "secrets/quant"
    (key_dir / "Bot.g1.json").rename(key_dir / "Bot.previous.json")
    (key_dir / "Bot.revoked.json").write_bytes((key_dir / "Bot.previous.json").read_bytes())
    assert generations(sink.read_held(ADDRESS)) == [1]
    store(sink, 3, "hmac")
    assert generations(sink.read_held(ADDRESS)) == [1, 2]
    sink.make_current(ADDRESS, 1)
    assert sink.read_current(ADDRESS).api_key == api_key(1)
    sink.destroy(ADDRESS, api_key(2))
    assert not (key_dir / "Bot.revoked.json").exists()
    sink.destroy(ADDRESS, api_key(1))
    assert files_holding(tmp_path, secret_of(1, "hmac")) == []


def test_dotenv_reads_the_old_previous_slot_and_sweeps_revoked_copies(tmp_path):
    sink = open_sink("dotenv:bots/copy.env", tmp_path)
    store(sink, 1, "ed25519")
    store(sink, 2, "ed25519")
    bots = tmp_path / "bots"
    (bots / "copy.env.g1").rename(bots / "copy.env.previous")
    assert generations(sink.read_held(ADDRESS)) == [1]
    sink.make_current(ADDRESS, 1)
    assert generations(sink.read_held(ADDRESS)) == [2]
    (bots / "copy.env.revoked").write_bytes((bots / "copy.env.g2").read_bytes())
    (bots / "copy.env.g2").unlink()
    sink.destroy(ADDRESS, api_key(2))
    assert files_holding(tmp_path, secret_of(2, "ed25519")) == []
    assert sorted(p.name for p in bots.iterdir()) == ["copy.env", "copy.env.g1.pem"]


@pytest.mark.parametrize(("spec", "key_type"), SINKS)
def test_a_write_a_kill_cut_short_leaves_no_secret_once_discarded(tmp_path: Path, spec, key_type):
    sink = open_sink(spec, tmp_path)
    store(sink, 1, key_type)
    target = tmp_path / (
        "secrets/quant/Bot.pending.json" if spec.startswith("file") else "bots/copy.env.pending"
    )
    torn = target.with_name(f".{target.name}.0123456789ab.tmp")
    torn.write_text(CANARY)
    other = target.with_name(".Other.pending.json.0123456789ab.tmp")
    other.write_text("not ours")

    sink.discard_partial_writes(ADDRESS)

    assert not torn.exists() and other.exists()
    assert sink.read_current(ADDRESS) is not None
