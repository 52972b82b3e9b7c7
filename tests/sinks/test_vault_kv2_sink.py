"""The Vault sink against Vault's documented KV v2 HTTP API, mocked with respx."""

import json

import httpx
import pytest
import respx
from fake_vault import FakeKV2
from sink_material import CANARY, make_material

from orchestrator.sinks import (
    NoPendingKey,
    NoSuchGeneration,
    SinkConfigError,
    SinkConflict,
    VaultError,
    open_sink,
)
from orchestrator.sinks.filesink import material_to_json

ADDR = "https://vault.example:8200"
TOKEN = "hvs.TOKEN-CANARY-1234567890"
ENV = {"VAULT_ADDR": ADDR, "VAULT_TOKEN": TOKEN}
DATA = f"{ADDR}/v1/secret/data/orc/quant/Bot"
META = f"{ADDR}/v1/secret/metadata/orc/quant/Bot"
DESTROY = f"{ADDR}/v1/secret/destroy/orc/quant/Bot"


@pytest.fixture
def kv():
    fake = FakeKV2()
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=f"{ADDR}/v1/secret/").mock(side_effect=fake.handle)
        yield fake


@pytest.fixture
def sink(tmp_path):
    return open_sink("vault:secret/orc", tmp_path, env=ENV)


def test_missing_environment_is_a_clear_error(tmp_path):
    with pytest.raises(SinkConfigError, match="VAULT_ADDR and VAULT_TOKEN"):
        open_sink("vault:secret/orc", tmp_path, env={})
    with pytest.raises(SinkConfigError, match="VAULT_TOKEN"):
        open_sink("vault:secret/orc", tmp_path, env={"VAULT_ADDR": ADDR})
    with pytest.raises(SinkConfigError) as caught:
        open_sink("vault:secret/orc", tmp_path, env={"VAULT_ADDR": "vault", "VAULT_TOKEN": TOKEN})
    assert TOKEN not in str(caught.value)


def test_pending_is_a_cas_write_with_status(kv, sink):
    ref = sink.write_pending(make_material())
    assert ref == "vault:secret/orc/quant/Bot?version=1"
    write = [r for r in kv.requests if r.method == "POST"][0]
    body = json.loads(write.content)
    assert body["options"] == {"cas": 0}
    assert body["data"]["status"] == "pending" and body["data"]["secret"] == f"{CANARY}-g1"
    assert write.headers["X-Vault-Token"] == TOKEN
    assert "X-Vault-Namespace" not in write.headers
    assert sink.read_current("quant/Bot") is None and not sink.exists("quant/Bot")
    assert sink.read_pending("quant/Bot").generation == 1


def test_namespace_header(kv, tmp_path):
    sink = open_sink("vault:secret/orc", tmp_path, env={**ENV, "VAULT_NAMESPACE": "team/quant"})
    sink.write_pending(make_material())
    assert all(r.headers["X-Vault-Namespace"] == "team/quant" for r in kv.requests)


def api_key(generation: int) -> str:
    return f"{'K' * 60}G{generation:03d}"


def store(sink, generation: int, key_type: str = "hmac") -> None:
    sink.write_pending(make_material(generation, key_type, api_key=api_key(generation)))
    sink.promote("quant/Bot", generation)


def main_path_posts(kv) -> list[dict]:
    return [
        json.loads(r.content)
        for r in kv.requests
        if r.method == "POST" and r.url.path == "/v1/secret/data/orc/quant/Bot"
    ]


def test_lifecycle_pending_current_held(kv, sink):
    address = "quant/Bot"
    sink.write_pending(make_material(1, api_key=api_key(1)))
    sink.promote(address)
    assert kv.versions[2]["status"] == "current" and kv.versions[2]["promoted_from"] == 1
    assert sink.read_current(address).generation == 1 and sink.read_held(address) == []

    sink.write_pending(make_material(2, api_key=api_key(2)))  # version 3: bots still get 2
    assert kv.versions[3]["current_version"] == 2
    assert sink.read_current(address).generation == 1
    sink.promote(address)  # version 4; generation 1 copied to its own secret first
    assert sink.read_current(address).generation == 2
    assert [m.generation for m in sink.read_held(address)] == [1]
    assert kv.held(1)[1]["status"] == "held" and kv.held(1)[1]["apiKey"] == api_key(1)
    assert any(r.url.params.get("version") == "2" for r in kv.requests)
    assert [body["options"]["cas"] for body in main_path_posts(kv)] == [0, 1, 2, 3]

    sink.promote(address, generation=2)  # already promoted: no write
    with pytest.raises(NoPendingKey):
        sink.promote(address, generation=3)
    assert len(main_path_posts(kv)) == 4


def test_two_promotes_in_grace_keep_both_older_generations(kv, sink):
    for generation in (1, 2, 3):
        store(sink, generation)
    assert sink.read_current("quant/Bot").generation == 3
    held = sink.read_held("quant/Bot")
    assert [(m.generation, m.api_key) for m in held] == [(1, api_key(1)), (2, api_key(2))]
    assert [m.secret.get_secret_value() for m in held] == [f"{CANARY}-g1", f"{CANARY}-g2"]


def test_make_current_round_trip(kv, sink):
    address = "quant/Bot"
    for generation in (1, 2, 3):
        store(sink, generation)
    sink.make_current(address, 1)
    assert sink.read_current(address).api_key == api_key(1)
    assert [m.generation for m in sink.read_held(address)] == [2, 3]
    assert kv.held(1) == {}  # its held secret is gone once it is current
    sink.make_current(address, 1)  # a re-run: already current
    sink.make_current(address, 3)
    assert sink.read_current(address).generation == 3
    assert [m.generation for m in sink.read_held(address)] == [1, 2]
    with pytest.raises(NoSuchGeneration):
        sink.make_current(address, 7)


def test_make_current_keeps_a_pending_key_on_top(kv, sink):
    address = "quant/Bot"
    store(sink, 1)
    store(sink, 2)
    sink.write_pending(make_material(3, api_key=api_key(3)))
    sink.make_current(address, 1)
    assert sink.read_current(address).generation == 1
    assert sink.read_pending(address).generation == 3
    sink.promote(address)
    assert [m.generation for m in sink.read_held(address)] == [1, 2]


@pytest.mark.parametrize("key_type", ["hmac", "ed25519"])
def test_destroy_destroys_every_version_holding_the_secret(kv, sink, key_type):
    address = "quant/Bot"
    for generation in (1, 2, 3):
        store(sink, generation, key_type)
    secret_1 = make_material(1, key_type).secret.get_secret_value()
    assert kv.holding(json.dumps(secret_1)[1:-1])
    sink.destroy(address, api_key(1))
    destroyed = [
        (r.url.path, json.loads(r.content)["versions"])
        for r in kv.requests
        if "/destroy/" in r.url.path
    ]
    assert destroyed == [
        ("/v1/secret/destroy/orc/quant/Bot/g1", [1]),
        ("/v1/secret/destroy/orc/quant/Bot", [1, 2]),  # the pending version and the current
    ]
    assert kv.holding(json.dumps(secret_1)[1:-1]) == [] and kv.holding(api_key(1)) == []
    assert [m.generation for m in sink.read_held(address)] == [2]
    sink.destroy(address, api_key(1))  # idempotent
    sink.destroy(address, api_key(3))
    assert sink.read_current(address) is None and not sink.exists(address)
    sink.destroy(address, api_key(2))
    assert kv.holding(CANARY) == [] and sink.read_held(address) == []


def test_destroy_reaches_pending_and_its_copies(kv, sink):
    address = "quant/Bot"
    store(sink, 1)
    sink.write_pending(make_material(2, api_key=api_key(2)))
    sink.discard_pending(address)  # the current is copied on top
    sink.write_pending(make_material(2, api_key=api_key(2)))
    sink.destroy(address, api_key(2))
    assert sink.read_pending(address) is None and kv.holding(f"{CANARY}-g2") == []
    sink.destroy(address, api_key(1))
    assert kv.holding(CANARY) == []


def test_old_previous_version_is_read_as_held_and_kept(kv, sink):
    address = "quant/Bot"
    generation_1 = material_to_json(make_material(1, api_key=api_key(1)))
    generation_2 = material_to_json(make_material(2, api_key=api_key(2)))
    kv.versions[1] = {**generation_1, "status": "current"}
    kv.versions[2] = {**generation_2, "status": "current", "previous_version": 1}
    assert [m.generation for m in sink.read_held(address)] == [1]
    store(sink, 3)
    assert [m.generation for m in sink.read_held(address)] == [1, 2]
    sink.destroy(address, api_key(1))
    assert kv.holding(f"{CANARY}-g1") == []
    assert [m.generation for m in sink.read_held(address)] == [2]


def test_destroy_clears_what_an_old_revoke_left(kv, sink):
    store(sink, 1)
    kv.versions[3] = {"status": "revoked", "apiKey": api_key(1), "revoked_version": 2}
    store(sink, 2)
    sink.destroy("quant/Bot", api_key(2))
    assert kv.holding(CANARY) == []


def test_cas_conflict_is_a_clear_error(tmp_path, sink):
    with respx.mock() as router:
        router.get(META).respond(200, json={"data": {"current_version": 3}})
        router.get(DATA).respond(
            200, json={"data": {"data": {"status": "current"}, "metadata": {"version": 3}}}
        )
        router.post(DATA).respond(
            400, json={"errors": ["check-and-set parameter did not match the current version"]}
        )
        with pytest.raises(SinkConflict, match="check-and-set") as caught:
            sink.write_pending(make_material())
    assert TOKEN not in str(caught.value) and CANARY not in str(caught.value)


def test_permission_denied_never_shows_token(sink):
    with respx.mock() as router:
        router.get(META).respond(403, json={"errors": [f"permission denied for {TOKEN}"]})
        with pytest.raises(VaultError, match="403") as caught:
            sink.write_pending(make_material())
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)


def test_other_errors_are_scrubbed(sink):
    with respx.mock() as router:
        router.get(DATA).respond(500, json={"errors": [f"internal error near {TOKEN}"]})
        with pytest.raises(VaultError, match="500") as caught:
            sink.read_current("quant/Bot")
    assert TOKEN not in str(caught.value)


def test_unreachable_vault(sink):
    with respx.mock() as router:
        router.get(DATA).mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(VaultError, match="cannot reach Vault") as caught:
            sink.exists("quant/Bot")
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_discard_pending_restores_current_and_destroys_pending(kv, sink):
    address = "quant/Bot"
    sink.write_pending(make_material(1))
    sink.discard_pending(address)  # first key never went live: just destroyed
    assert kv.versions[1] is None and sink.read_current(address) is None

    sink.write_pending(make_material(1))  # v2
    sink.promote(address)  # v3 current
    sink.write_pending(make_material(2))  # v4 pending
    sink.discard_pending(address)  # v5 = copy of v3; v4 destroyed
    assert kv.versions[4] is None and kv.versions[5]["also_in"] == [3]
    assert sink.read_current(address).generation == 1 and sink.read_pending(address) is None
