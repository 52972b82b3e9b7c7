"""`file:DIR`: one JSON file per key, `DIR/<sub-account>/<label>.json`.

Beside it `<label>.pending.json`, `<label>.previous.json` and, once revoked,
`<label>.revoked.json`. Files are 0600 in 0700 directories whatever the umask, and every
write is atomic.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from orchestrator.sinks.errors import CorruptMaterial, NoPendingKey
from orchestrator.sinks.material import KeyMaterial, split_address
from orchestrator.sinks.paths import check_safe
from orchestrator.store.atomic import (
    PRIVATE_DIR,
    atomic_rename,
    atomic_write,
    ensure_private_dir,
    unlink_durably,
)

SLOTS = ("pending", "current", "previous", "revoked")


def material_to_json(material: KeyMaterial) -> dict[str, Any]:
    secret_field = "private_key" if material.key_type == "ed25519" else "secret"
    return {
        "subaccount": material.subaccount,
        "label": material.label,
        "apiKey": material.api_key,
        "key_type": material.key_type,
        secret_field: material.secret.get_secret_value(),
        "created": material.created_at.isoformat(),
        "generation": material.generation,
    }


def material_from_json(data: dict[str, Any], where: str) -> KeyMaterial:
    try:
        secret = data["private_key"] if data["key_type"] == "ed25519" else data["secret"]
        return KeyMaterial(
            subaccount=data["subaccount"],
            label=data["label"],
            api_key=data.get("apiKey"),
            key_type=data["key_type"],
            secret=SecretStr(secret),
            created_at=datetime.fromisoformat(data["created"]),
            generation=data["generation"],
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise CorruptMaterial(
            f"{where} is not readable key material ({_field_hint(exc)})"
        ) from None


def _field_hint(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, ValidationError):
        return ", ".join(".".join(map(str, e["loc"])) for e in exc.errors(include_input=False))
    return type(exc).__name__


class FileSink:
    def __init__(self, root: Path, project_dir: Path, spec: str) -> None:
        self.root = Path(root)
        self.project_dir = Path(project_dir)
        self.spec = spec
        self._cleared: set[Path] = set()

    def path(self, address: str, slot: str) -> Path:
        sub, label = split_address(address)
        suffix = "" if slot == "current" else f".{slot}"
        return self.root / sub / f"{label}{suffix}.json"

    def check(self, address: str) -> None:
        for slot in SLOTS:
            check_safe(self.path(address, slot), self.project_dir, self._cleared)

    def write_pending(self, material: KeyMaterial) -> str:
        self.check(material.address)
        target = self.path(material.address, "pending")
        self._prepare_dirs(target.parent)
        atomic_write(target, json.dumps(material_to_json(material), indent=2).encode() + b"\n")
        return f"file:{target}"

    def read_pending(self, address: str) -> KeyMaterial | None:
        return self._read(self.path(address, "pending"))

    def discard_pending(self, address: str) -> None:
        unlink_durably(self.path(address, "pending"))

    def read_current(self, address: str) -> KeyMaterial | None:
        return self._read(self.path(address, "current"))

    def read_previous(self, address: str) -> KeyMaterial | None:
        return self._read(self.path(address, "previous"))

    def exists(self, address: str) -> bool:
        return self.path(address, "current").is_file()

    def promote(self, address: str, generation: int | None = None) -> None:
        self.check(address)
        pending, current = self.path(address, "pending"), self.path(address, "current")
        if not pending.exists():
            _already_promoted(self.read_current(address), address, generation, self.spec)
            return
        if current.exists():
            atomic_write(self.path(address, "previous"), current.read_bytes())
        atomic_rename(pending, current)

    def mark_revoked(self, address: str) -> None:
        self.check(address)
        current = self.path(address, "current")
        if current.exists():
            atomic_rename(current, self.path(address, "revoked"))

    def delete_previous(self, address: str) -> None:
        unlink_durably(self.path(address, "previous"))

    def _prepare_dirs(self, key_dir: Path) -> None:
        ensure_private_dir(key_dir)
        for directory in (self.root, key_dir):
            if os.stat(directory).st_mode & 0o777 != PRIVATE_DIR:
                os.chmod(directory, PRIVATE_DIR)

    def _read(self, path: Path) -> KeyMaterial | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            raise CorruptMaterial(f"{path} is not valid JSON") from None
        if not isinstance(data, dict):
            raise CorruptMaterial(f"{path} does not hold a JSON object")
        return material_from_json(data, str(path))


def _already_promoted(
    current: KeyMaterial | None, address: str, generation: int | None, spec: str
) -> None:
    if current is not None and generation is not None and current.generation == generation:
        return
    raise NoPendingKey(f"{spec}: no pending key material for {address} to promote")
