"""Just enough of Vault's KV v2 HTTP API for the sink tests, served through respx."""

import json
import re

import httpx


class FakeKV2:
    """Just enough of a KV v2 mount: versions per path, cas, metadata, list, destroy."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[int, dict | None]] = {}
        self.requests: list[httpx.Request] = []

    @property
    def versions(self) -> dict[int, dict | None]:
        """The versions of the key's own secret, `orc/quant/Bot`."""
        return self.secrets.setdefault("orc/quant/Bot", {})

    def held(self, generation: int) -> dict[int, dict | None]:
        return self.secrets.get(f"orc/quant/Bot/g{generation}", {})

    def current(self, path: str = "orc/quant/Bot") -> int:
        return max(self.secrets.get(path, {}), default=0)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        kind, path = re.match(r"/v1/secret/(\w+)/(.*)", request.url.path).groups()
        if kind == "data":
            return self.data(request, path)
        if kind == "destroy":
            for version in json.loads(request.content)["versions"]:
                self.secrets[path][version] = None
            return httpx.Response(204)
        if request.method == "DELETE":
            self.secrets.pop(path, None)
            return httpx.Response(204)
        if request.url.params.get("list") == "true":
            return self.listing(path)
        return self.metadata(path)

    def data(self, request: httpx.Request, path: str) -> httpx.Response:
        versions = self.secrets.setdefault(path, {})
        if request.method == "POST":
            body = json.loads(request.content)
            if body["options"]["cas"] != self.current(path):
                return httpx.Response(
                    400,
                    json={"errors": ["check-and-set parameter did not match the current version"]},
                )
            versions[self.current(path) + 1] = body["data"]
            return httpx.Response(
                200, json={"data": {"version": self.current(path), "destroyed": False}}
            )
        version = int(request.url.params.get("version", self.current(path)))
        if version not in versions:
            return httpx.Response(404, json={"errors": []})
        data = versions[version]
        metadata = {"version": version, "destroyed": data is None, "deletion_time": ""}
        status = 404 if data is None else 200
        return httpx.Response(status, json={"data": {"data": data, "metadata": metadata}})

    def metadata(self, path: str) -> httpx.Response:
        versions = self.secrets.get(path)
        if not versions:
            return httpx.Response(404, json={"errors": []})
        listed = {
            str(v): {"destroyed": data is None, "deletion_time": ""} for v, data in versions.items()
        }
        return httpx.Response(
            200, json={"data": {"current_version": self.current(path), "versions": listed}}
        )

    def listing(self, path: str) -> httpx.Response:
        prefix = f"{path}/"
        keys = sorted(
            {p[len(prefix) :].split("/")[0] for p in self.secrets if p.startswith(prefix)}
        )
        if not keys:
            return httpx.Response(404, json={"errors": []})
        return httpx.Response(200, json={"data": {"keys": keys}})

    def holding(self, needle: str) -> list[tuple[str, int]]:
        """(path, version) of every stored version whose data contains `needle`."""
        return [
            (path, version)
            for path, versions in self.secrets.items()
            for version, data in versions.items()
            if data is not None and needle in json.dumps(data)
        ]
