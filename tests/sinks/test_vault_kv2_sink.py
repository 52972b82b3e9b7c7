"""The Vault sink against Vault's documented KV v2 HTTP API, mocked with respx."""

import json

import httpx
import pytest
import respx
from sink_material import CANARY, make_material

from orchestrator.sinks import (
    NoPendingKey,
    SinkConfigError,
    SinkConflict,
    VaultError,
    open_sink,
)

ADDR = "https://vault.example:8200"
TOKEN = "hvs.TOKEN-CANARY-1234567890"
ENV = {"VAULT_ADDR": ADDR, "VAULT_TOKEN": TOKEN}
DATA = f"{ADDR}/v1/secret/data/orc/quant/Bot"
META = f"{ADDR}/v1/secret/metadata/orc/quant/Bot"
DESTROY = f"{ADDR}/v1/secret/destroy/orc/quant/Bot"


class FakeKV2:
    """Just enough of a KV v2 mount: versions, cas, metadata, destroy."""

    def __init__(self) -> None:
        self.versions: dict[int, dict | None] = {}
        self.requests: list[httpx.Request] = []

    def current(self) -> int:
        return max(self.versions, default=0)

    def data(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST":
            body = json.loads(request.content)
            if body["options"]["cas"] != self.current():
                return httpx.Response(
                    400,
                    json={"errors": ["check-and-set parameter did not match the current version"]},
                )
            self.versions[self.current() + 1] = body["data"]
            return httpx.Response(
                200, json={"data": {"version": self.current(), "destroyed": False}}
            )
        version = int(request.url.params.get("version", self.current()))
        if version not in self.versions:
            return httpx.Response(404, json={"errors": []})
        data = self.versions[version]
        metadata = {"version": version, "destroyed": data is None, "deletion_time": ""}
        status = 404 if data is None else 200
        return httpx.Response(status, json={"data": {"data": data, "metadata": metadata}})

    def metadata(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.versions:
            return httpx.Response(404, json={"errors": []})
        return httpx.Response(200, json={"data": {"current_version": self.current()}})

    def destroy(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for version in json.loads(request.content)["versions"]:
            self.versions[version] = None
        return httpx.Response(204)


@pytest.fixture
def kv():
    fake = FakeKV2()
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=DATA).mock(side_effect=fake.data)
        router.route(url__startswith=META).mock(side_effect=fake.metadata)
        router.post(DESTROY).mock(side_effect=fake.destroy)
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


def test_lifecycle_pending_current_previous(kv, sink):
    address = "quant/Bot"
    sink.write_pending(make_material(1))
    sink.promote(address)
    assert kv.versions[2]["status"] == "current" and kv.versions[2]["promoted_from"] == 1
    assert sink.read_current(address).generation == 1

    sink.write_pending(make_material(2))  # version 3: bots still get version 2
    assert kv.versions[3]["current_version"] == 2
    assert sink.read_current(address).generation == 1
    sink.promote(address)  # version 4
    assert sink.read_current(address).generation == 2
    assert sink.read_previous(address).generation == 1
    assert any(r.url.params.get("version") == "2" for r in kv.requests)
    cas_values = [
        json.loads(r.content)["options"]["cas"]
        for r in kv.requests
        if r.method == "POST" and "/data/" in str(r.url)
    ]
    assert cas_values == [0, 1, 2, 3]

    sink.promote(address, generation=2)  # already promoted: no write
    with pytest.raises(NoPendingKey):
        sink.promote(address, generation=3)

    sink.delete_previous(address)
    assert kv.versions[1] is None and kv.versions[2] is None
    assert sink.read_previous(address) is None
    assert sink.read_current(address).generation == 2

    sink.mark_revoked(address)
    assert kv.versions[5]["status"] == "revoked" and kv.versions[5]["revoked_version"] == 4
    assert "secret" not in kv.versions[5]
    assert sink.read_current(address) is None and not sink.exists(address)


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

    sink.write_pending(make_material(2))  # v6
    sink.promote(address)  # v7
    assert sink.read_previous(address).generation == 1
    sink.delete_previous(address)
    assert all(kv.versions[v] is None for v in (2, 3, 5))
    assert sink.read_current(address).generation == 2
