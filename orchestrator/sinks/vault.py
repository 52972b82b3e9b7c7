"""`vault:MOUNT/PATH`: HashiCorp Vault KV version 2, one secret per key at PATH/<sub>/<label>.

Every step writes a new version with check-and-set, so two writers cannot interleave:

    pending   {"status": "pending", ..., "current_version": N}   N: the version bots still use
    current   {"status": "current", ..., "previous_version": P, "promoted_from": Q,
               "also_in": [...]}   also_in: older copies of this secret (after a discard)
    revoked   {"status": "revoked", ..., "revoked_version": N}   no secret

A bot reads the latest version; when its status is "pending" it reads `current_version`
(`?version=N`). The previous generation stays readable as an older version until
`delete_previous` destroys it (and its pending twin).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from orchestrator.sinks.errors import NoPendingKey, SinkConfigError, SinkConflict, VaultError
from orchestrator.sinks.filesink import material_from_json, material_to_json
from orchestrator.sinks.material import KeyMaterial, split_address

POINTERS = ("status", "current_version", "previous_version", "promoted_from", "also_in")


class VaultSink:
    def __init__(
        self,
        mount: str,
        base_path: str,
        addr: str,
        token: str,
        namespace: str | None = None,
        spec: str = "",
        timeout: float = 10.0,
    ) -> None:
        self.mount = mount.strip("/")
        self.base_path = base_path.strip("/")
        self.addr = addr.rstrip("/")
        self.spec = spec or f"vault:{self.mount}/{self.base_path}"
        headers = {"X-Vault-Token": token}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        self._token = token
        self._client = httpx.Client(base_url=self.addr, headers=headers, timeout=timeout)

    def key_path(self, address: str) -> str:
        sub, label = split_address(address)
        return "/".join(part for part in (self.base_path, sub, label) if part)

    def check(self, address: str) -> None:
        self.key_path(address)

    # the interface

    def write_pending(self, material: KeyMaterial) -> str:
        path = self.key_path(material.address)
        cas = self._current_version(path)
        latest = self._read(path) if cas else None
        data = material_to_json(material)
        data.update(status="pending", current_version=_current_pointer(latest))
        version = self._write(path, data, cas)
        return f"vault:{self.mount}/{path}?version={version}"

    def read_pending(self, address: str) -> KeyMaterial | None:
        latest = self._read(self.key_path(address))
        if latest is None or latest[0].get("status") != "pending":
            return None
        return self._material(latest[0], address)

    def discard_pending(self, address: str) -> None:
        """Put the current material back on top (cas), then destroy the pending version."""
        path = self.key_path(address)
        latest = self._read(path)
        if latest is None or latest[0].get("status") != "pending":
            return
        data, version = latest
        if data.get("current_version"):
            current = self._read(path, data["current_version"])
            if current is not None:
                restored, restored_from = current
                also_in = [*restored.get("also_in", []), restored_from]
                self._write(path, {**restored, "also_in": also_in}, version)
        self._destroy(path, [version])

    def read_current(self, address: str) -> KeyMaterial | None:
        found = self._read_current(self.key_path(address))
        return None if found is None else self._material(found[0], address)

    def read_previous(self, address: str) -> KeyMaterial | None:
        path = self.key_path(address)
        found = self._read_current(path)
        if found is None or not found[0].get("previous_version"):
            return None
        previous = self._read(path, found[0]["previous_version"])
        return None if previous is None else self._material(previous[0], address)

    def exists(self, address: str) -> bool:
        return self._read_current(self.key_path(address)) is not None

    def promote(self, address: str, generation: int | None = None) -> None:
        path = self.key_path(address)
        latest = self._read(path)
        if latest is None or latest[0].get("status") != "pending":
            current = self.read_current(address)
            if current is None or generation is None or current.generation != generation:
                raise NoPendingKey(f"{self.spec}: no pending key material for {address}")
            return
        data, version = latest
        promoted = {k: v for k, v in data.items() if k not in POINTERS}
        promoted.update(
            status="current", previous_version=data.get("current_version"), promoted_from=version
        )
        self._write(path, promoted, version)

    def mark_revoked(self, address: str) -> None:
        path = self.key_path(address)
        found = self._read_current(path)
        if found is None:
            return
        data, version = found
        revoked = {
            "status": "revoked",
            "subaccount": data.get("subaccount"),
            "label": data.get("label"),
            "apiKey": data.get("apiKey"),
            "generation": data.get("generation"),
            "revoked_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "revoked_version": version,
        }
        self._write(path, revoked, self._current_version(path))

    def delete_previous(self, address: str) -> None:
        """Destroy the versions holding the previous secret: the old current and its pending twin."""
        path = self.key_path(address)
        found = self._read_current(path)
        if found is None or not found[0].get("previous_version"):
            return
        previous_version = found[0]["previous_version"]
        previous = self._read(path, previous_version)
        versions = [previous_version]
        if previous is not None:
            versions += previous[0].get("also_in", [])
            if previous[0].get("promoted_from"):
                versions.append(previous[0]["promoted_from"])
        self._destroy(path, versions)

    def _destroy(self, path: str, versions: list[int]) -> None:
        self._request("POST", f"/v1/{self.mount}/destroy/{path}", json={"versions": versions})

    def close(self) -> None:
        self._client.close()

    # Vault's HTTP API

    def _current_version(self, path: str) -> int:
        """The latest version number (0 when the secret does not exist): the cas to write with."""
        response = self._request("GET", f"/v1/{self.mount}/metadata/{path}", allow_404=True)
        if response is None:
            return 0
        return int(response["data"].get("current_version") or 0)

    def _read(self, path: str, version: int | None = None) -> tuple[dict[str, Any], int] | None:
        """(data, version) of the latest or a given version; None if absent, deleted or destroyed."""
        params = {"version": str(version)} if version else None
        response = self._request(
            "GET", f"/v1/{self.mount}/data/{path}", params=params, allow_404=True
        )
        if response is None or not response.get("data") or not response["data"].get("data"):
            return None
        return response["data"]["data"], int(response["data"]["metadata"]["version"])

    def _read_current(self, path: str) -> tuple[dict[str, Any], int] | None:
        latest = self._read(path)
        if latest is None:
            return None
        status = latest[0].get("status")
        if status == "current":
            return latest
        if status == "pending" and latest[0].get("current_version"):
            return self._read(path, latest[0]["current_version"])
        return None

    def _write(self, path: str, data: dict[str, Any], cas: int) -> int:
        response = self._request(
            "POST", f"/v1/{self.mount}/data/{path}", json={"options": {"cas": cas}, "data": data}
        )
        return int(response["data"]["version"])

    def _material(self, data: dict[str, Any], address: str) -> KeyMaterial:
        return material_from_json(data, f"{self.spec} {address}")

    def _request(
        self, method: str, url: str, allow_404: bool = False, **kwargs: Any
    ) -> dict[str, Any] | None:
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise VaultError(
                f"cannot reach Vault at {self.addr} ({type(exc).__name__}); check VAULT_ADDR"
            ) from None
        if response.status_code == 404 and allow_404:
            return None
        if response.status_code >= 400:
            raise self._error(method, url, response)
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()

    def _error(self, method: str, url: str, response: httpx.Response) -> Exception:
        reasons = "; ".join(_errors_of(response))
        if self._token:
            reasons = reasons.replace(self._token, "***")
        if response.status_code == 400 and "check-and-set" in reasons:
            return SinkConflict(
                f"{self.spec}: {url} changed while this run wrote it (Vault check-and-set"
                " failed). Another writer is at work; run the command again."
            )
        if response.status_code == 403:
            return VaultError(
                f"Vault refused {method} {url} (403 permission denied): the token in"
                " VAULT_TOKEN is invalid, expired, or its policy does not allow this path"
            )
        return VaultError(f"Vault answered {response.status_code} to {method} {url}: {reasons}")


def _errors_of(response: httpx.Response) -> list[str]:
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return [response.reason_phrase or "no details"]
    return [str(error) for error in errors] or ["no details"]


def _current_pointer(latest: tuple[dict[str, Any], int] | None) -> int | None:
    """Which version bots use while a pending one is the latest."""
    if latest is None:
        return None
    data, version = latest
    if data.get("status") == "current":
        return version
    if data.get("status") == "pending":
        return data.get("current_version")
    return None


def open_vault(target: str, env: dict[str, str] | Any, spec: str) -> VaultSink:
    mount, _, base_path = target.strip("/").partition("/")
    if not mount:
        raise SinkConfigError(f"{spec!r}: say which KV v2 mount, e.g. vault:secret/orchestrator")
    addr, token = env.get("VAULT_ADDR"), env.get("VAULT_TOKEN")
    missing = [name for name, value in (("VAULT_ADDR", addr), ("VAULT_TOKEN", token)) if not value]
    if missing:
        raise SinkConfigError(
            f"{spec!r} needs {' and '.join(missing)} in the environment"
            " (the Vault address, e.g. https://vault.example:8200, and a token)"
        )
    if not addr.startswith(("http://", "https://")):
        raise SinkConfigError(f"VAULT_ADDR must be an http(s):// URL, got {addr!r}")
    return VaultSink(mount, base_path, addr, token, env.get("VAULT_NAMESPACE"), spec)
