"""`vault:MOUNT/PATH`: HashiCorp Vault KV version 2, one secret per key at PATH/<sub>/<label>.

Every step writes a new version with check-and-set, so two writers cannot interleave:

    pending   {"status": "pending", ..., "current_version": N}   N: the version bots still use
    current   {"status": "current", ..., "promoted_from": Q, "also_in": [...]}
              also_in: older copies of this secret (after a discard)

A bot reads the latest version; when its status is "pending" it reads `current_version`
(`?version=N`). Each held generation (still live, no longer current) is kept in a secret of
its own, `PATH/<sub>/<label>/g<N>` (`{"status": "held", ...}`), so rotations never push it out
of the version history. Destroying a key's material destroys (KV v2 `destroy`, not a soft
delete) every version that holds its secret: in the key's secret and in its held secret.

Earlier versions kept the previous generation as an older version named by the current's
`previous_version`: it is read as held, and copied to its own secret on the next write.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from orchestrator.sinks.errors import (
    NoPendingKey,
    NoSuchGeneration,
    SinkConfigError,
    SinkConflict,
    SinkEnvironmentMissing,
    VaultError,
)
from orchestrator.sinks.filesink import material_from_json, material_to_json
from orchestrator.sinks.material import (
    KeyMaterial,
    held_in_order,
    readdressed,
    same_key,
    same_material,
    split_address,
)


@dataclass
class KeyCopies:
    """What a rename copies: the key's material in each role, readdressed."""

    current: KeyMaterial | None = None
    pending: KeyMaterial | None = None
    held: list[KeyMaterial] = field(default_factory=list)


POINTERS = ("status", "current_version", "previous_version", "promoted_from", "also_in")
HELD_NAME = re.compile(r"g(\d+)")


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

    def paths(self, address: str) -> list[Path]:
        self.key_path(address)
        return []

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

    def read_held(self, address: str) -> list[KeyMaterial]:
        path = self.key_path(address)
        current = self._read_current(path)
        found = [self._material(data, address) for data in self._held_secrets(address).values()]
        if current is not None:
            legacy = self._legacy_previous(path, current[0])
            found += [] if legacy is None else [self._material(legacy, address)]
        return held_in_order(
            found, None if current is None else self._material(current[0], address)
        )

    def exists(self, address: str) -> bool:
        return self._read_current(self.key_path(address)) is not None

    def discard_partial_writes(self, address: str) -> None:
        """A Vault write is one request: nothing half done stays behind on this machine."""

    def promote(self, address: str, generation: int | None = None) -> None:
        path = self.key_path(address)
        latest = self._read(path)
        if latest is None or latest[0].get("status") != "pending":
            current = self.read_current(address)
            if current is None or generation is None or current.generation != generation:
                raise NoPendingKey(f"{self.spec}: no pending key material for {address}")
            return
        data, version = latest
        self._hold_current(address, self._material(data, address))
        promoted = {k: v for k, v in data.items() if k not in POINTERS}
        promoted.update(status="current", promoted_from=version)
        self._write(path, promoted, version)

    def make_current(self, address: str, generation: int) -> None:
        path = self.key_path(address)
        current = self._read_current(path)
        if current is not None:
            self._keep_legacy_previous(address, current[0])
        held_path = self.held_path(address, generation)
        held = self._read(held_path)
        if held is None:
            if current is None or current[0].get("generation") != generation:
                raise NoSuchGeneration(
                    f"{self.spec}: no material of {address} generation {generation} to use"
                )
            return
        chosen = self._material(held[0], address)
        if current is None or not same_key(self._material(current[0], address), chosen):
            self._hold_current(address, chosen)
            self._write_current(path, material_to_json(chosen))
        self._remove_secret(held_path)

    def destroy(self, address: str, api_key: str) -> None:
        """Destroy every version holding the secret of `api_key`, and its held secret."""
        for held_path, data in self._held_secrets(address).items():
            if data.get("apiKey") == api_key:
                self._remove_secret(held_path)
        path = self.key_path(address)
        versions = self._versions_holding(path, api_key)
        if versions:
            self._destroy(path, versions)

    def rename(self, old_address: str, new_address: str) -> None:
        """Copy the key's secrets to the new path (held generations, current, then pending on
        top), then destroy every version and the metadata of the old secrets."""
        old_path, new_path = self.key_path(old_address), self.key_path(new_address)
        if old_address == new_address:
            return
        old_held_paths = self._held_paths(old_address)
        if not old_held_paths and not self._lookup("GET", f"/v1/{self.mount}/metadata/{old_path}"):
            return
        old_held = self._held_data(old_held_paths)
        copies = self._renamed_copies(old_address, new_address, old_held)
        self._refuse_other_material(new_address, copies)
        for material in copies.held:
            self._write_held(new_address, material)
        if copies.current is not None and self._read_current(new_path) is None:
            self._write_current(new_path, material_to_json(copies.current))
        if copies.pending is not None and self._read_pending(new_path) is None:
            self._write_pending_copy(new_path, copies.pending)
        for held_path in old_held_paths:
            self._remove_secret(held_path)
        self._remove_secret(old_path)

    def _renamed_copies(
        self, old_address: str, new_address: str, old_held: dict[str, dict[str, Any]]
    ) -> KeyCopies:
        old_path = self.key_path(old_address)
        copies = KeyCopies()
        current = self._read_current(old_path)
        held_data = list(old_held.values())
        if current is not None:
            copies.current = readdressed(self._material(current[0], old_address), new_address)
            legacy = self._legacy_previous(old_path, current[0])
            held_data += [] if legacy is None else [legacy]
        pending = self._read_pending(old_path)
        if pending is not None:
            copies.pending = readdressed(self._material(pending, old_address), new_address)
        found = [readdressed(self._material(d, old_address), new_address) for d in held_data]
        copies.held = held_in_order(found, copies.current)
        return copies

    def _refuse_other_material(self, new_address: str, copies: KeyCopies) -> None:
        """Never overwrite material already under the new address with a different key."""
        new_path = self.key_path(new_address)
        current = self._read_current(new_path)
        pending = self._read_pending(new_path)
        placed = [
            (copies.current, None if current is None else current[0]),
            (copies.pending, pending),
            *((m, self._data(self.held_path(new_address, m.generation))) for m in copies.held),
        ]
        for material, existing in placed:
            if material is None or existing is None:
                continue
            if not same_material(self._material(existing, new_address), material):
                raise SinkConflict(
                    f"{self.spec}: {new_path} already holds another key of generation"
                    f" {material.generation} than the one renamed to it; look at both before"
                    " removing either"
                )

    def _write_pending_copy(self, path: str, material: KeyMaterial) -> None:
        latest = self._read(path)
        data = material_to_json(material)
        data.update(status="pending", current_version=_current_pointer(latest))
        self._write(path, data, self._current_version(path))

    def _read_pending(self, path: str) -> dict[str, Any] | None:
        latest = self._read(path)
        if latest is None or latest[0].get("status") != "pending":
            return None
        return latest[0]

    def _data(self, path: str) -> dict[str, Any] | None:
        latest = self._read(path)
        return None if latest is None else latest[0]

    # held generations and destroying

    def held_path(self, address: str, generation: int) -> str:
        return f"{self.key_path(address)}/g{generation}"

    def _held_secrets(self, address: str) -> dict[str, dict[str, Any]]:
        """path -> data of each held generation's secret, ascending by generation."""
        return self._held_data(self._held_paths(address))

    def _held_data(self, held_paths: list[str]) -> dict[str, dict[str, Any]]:
        held = {}
        for held_path in held_paths:
            latest = self._read(held_path)
            if latest is not None:
                held[held_path] = latest[0]
        return held

    def _held_paths(self, address: str) -> list[str]:
        """Every held secret's path (with live versions or not), ascending by generation."""
        path = self.key_path(address)
        listed = self._lookup("GET", f"/v1/{self.mount}/metadata/{path}", params={"list": "true"})
        names = (listed or {}).get("data", {}).get("keys", [])
        generations = sorted(int(found[1]) for found in map(HELD_NAME.fullmatch, names) if found)
        return [f"{path}/g{generation}" for generation in generations]

    def _hold_current(self, address: str, incoming: KeyMaterial) -> None:
        """Copy the current generation to its held secret before `incoming` replaces it."""
        current = self._read_current(self.key_path(address))
        if current is None:
            return
        self._keep_legacy_previous(address, current[0])
        old = self._material(current[0], address)
        if not same_key(old, incoming):
            self._write_held(address, old)

    def _write_held(self, address: str, material: KeyMaterial) -> None:
        target = self.held_path(address, material.generation)
        existing = self._read(target)
        if existing is None:
            data = {**material_to_json(material), "status": "held"}
            self._write(target, data, self._current_version(target))
        elif not same_key(self._material(existing[0], address), material):
            raise SinkConflict(
                f"{self.spec}: {target} already holds another key of generation"
                f" {material.generation}; two keys of one generation cannot both be kept"
            )

    def _keep_legacy_previous(self, address: str, current: dict[str, Any]) -> None:
        """Give the generation an earlier version kept as `previous_version` its own held
        secret, before a write drops the pointer to it."""
        legacy = self._legacy_previous(self.key_path(address), current)
        if legacy is not None:
            self._write_held(address, self._material(legacy, address))

    def _legacy_previous(self, path: str, current: dict[str, Any]) -> dict[str, Any] | None:
        if not current.get("previous_version"):
            return None
        previous = self._read(path, current["previous_version"])
        return None if previous is None else previous[0]

    def _write_current(self, path: str, data: dict[str, Any]) -> None:
        """Write `data` as the bot-facing version; a pending version stays on top."""
        latest = self._read(path)
        version = self._write(path, {**data, "status": "current"}, self._current_version(path))
        if latest is not None and latest[0].get("status") == "pending":
            self._write(path, {**latest[0], "current_version": version}, version)

    def _versions_holding(self, path: str, api_key: str) -> list[int]:
        """The live versions holding the secret of `api_key`, or of a key an earlier version
        marked revoked (copies and pending twins included: matched by the secret itself)."""
        stored = {}
        for version in self._live_versions(path):
            found = self._read(path, version)
            if found is not None:
                stored[version] = found[0]
        doomed = {
            _secret_of(data)
            for data in stored.values()
            if data.get("apiKey") == api_key and data.get("status") != "revoked"
        }
        for data in stored.values():
            if data.get("status") == "revoked" and data.get("revoked_version") in stored:
                doomed.add(_secret_of(stored[data["revoked_version"]]))
        doomed.discard(None)
        return sorted(v for v, data in stored.items() if _secret_of(data) in doomed)

    def _remove_secret(self, path: str) -> None:
        """Destroy every version of a held secret, then its metadata."""
        versions = self._live_versions(path)
        if versions:
            self._destroy(path, versions)
        self._lookup("DELETE", f"/v1/{self.mount}/metadata/{path}")

    def _live_versions(self, path: str) -> list[int]:
        response = self._lookup("GET", f"/v1/{self.mount}/metadata/{path}")
        versions = (response or {}).get("data", {}).get("versions") or {}
        return sorted(int(v) for v, meta in versions.items() if not meta.get("destroyed"))

    def _destroy(self, path: str, versions: list[int]) -> None:
        self._request("POST", f"/v1/{self.mount}/destroy/{path}", json={"versions": versions})

    def close(self) -> None:
        self._client.close()

    # Vault's HTTP API

    def _current_version(self, path: str) -> int:
        """The latest version number (0 when the secret does not exist): the cas to write with."""
        response = self._lookup("GET", f"/v1/{self.mount}/metadata/{path}")
        if response is None:
            return 0
        return int(response["data"].get("current_version") or 0)

    def _read(self, path: str, version: int | None = None) -> tuple[dict[str, Any], int] | None:
        """(data, version) of the latest or a given version; None if absent, deleted or destroyed."""
        params = {"version": str(version)} if version else None
        response = self._lookup("GET", f"/v1/{self.mount}/data/{path}", params=params)
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

    def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """Vault's answer; any error status is raised."""
        found = self._lookup(method, url, **kwargs)
        if found is None:
            raise VaultError(f"Vault answered 404 to {method} {url}: no such secret")
        return found

    def _lookup(self, method: str, url: str, **kwargs: Any) -> dict[str, Any] | None:
        """Vault's answer, or None when it answers 404 (no such secret or version)."""
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise VaultError(
                f"cannot reach Vault at {self.addr} ({type(exc).__name__}); check VAULT_ADDR"
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self._error(method, url, response)
        if response.status_code == 204 or not response.content:
            return {}
        answer: dict[str, Any] = response.json()
        return answer

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


def _secret_of(data: dict[str, Any]) -> str | None:
    return data.get("secret") or data.get("private_key")


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


def open_vault(target: str, env: Mapping[str, str], spec: str) -> VaultSink:
    mount, _, base_path = target.strip("/").partition("/")
    if not mount:
        raise SinkConfigError(f"{spec!r}: say which KV v2 mount, e.g. vault:secret/orchestrator")
    addr, token = env.get("VAULT_ADDR") or "", env.get("VAULT_TOKEN") or ""
    missing = [name for name, value in (("VAULT_ADDR", addr), ("VAULT_TOKEN", token)) if not value]
    if missing:
        raise SinkEnvironmentMissing(
            f"{spec!r} needs {' and '.join(missing)} in the environment"
            " (the Vault address, e.g. https://vault.example:8200, and a token)"
        )
    if not addr.startswith(("http://", "https://")):
        raise SinkConfigError(f"VAULT_ADDR must be an http(s):// URL, got {addr!r}")
    return VaultSink(mount, base_path, addr, token, env.get("VAULT_NAMESPACE"), spec)
