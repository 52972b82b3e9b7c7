"""`file:DIR`: one JSON file per key, `DIR/<sub-account>/<label>.json` (the bot-facing one).

Beside it `<label>.pending.json` and one `<label>.g<N>.json` per held generation. Earlier
versions kept one `<label>.previous.json` (still read as held) and `<label>.revoked.json`
(material of a deleted key: removed on the next promote or destroy). Files are 0600 in 0700
directories whatever the umask, and every write is atomic.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from orchestrator.sinks.errors import (
    CorruptMaterial,
    NoPendingKey,
    NoSuchGeneration,
    SinkConflict,
)
from orchestrator.sinks.material import (
    KeyMaterial,
    held_in_order,
    readdressed,
    same_key,
    same_material,
    split_address,
)
from orchestrator.sinks.paths import GitCheck, check_safe
from orchestrator.store.atomic import (
    PRIVATE_DIR,
    atomic_rename,
    atomic_write,
    ensure_private_dir,
    remove_partial_writes,
    unlink_durably,
)

SLOTS = ("pending", "current", "previous", "revoked")
LEGACY_PREVIOUS, LEGACY_REVOKED = "previous", "revoked"


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
    def __init__(
        self, root: Path, project_dir: Path, spec: str, git: GitCheck | None = None
    ) -> None:
        self.root = Path(root)
        self.project_dir = Path(project_dir)
        self.spec = spec
        self._git = git or GitCheck()

    def path(self, address: str, slot: str) -> Path:
        sub, label = split_address(address)
        suffix = "" if slot == "current" else f".{slot}"
        return self.root / sub / f"{label}{suffix}.json"

    def held_path(self, address: str, generation: int) -> Path:
        return self.path(address, f"g{generation}")

    def paths(self, address: str) -> list[Path]:
        return self._material_paths(address)

    def check(self, address: str) -> None:
        for path in self.paths(address):
            check_safe(path, self.project_dir, self._git)

    def write_pending(self, material: KeyMaterial) -> str:
        self.check(material.address)
        target = self.path(material.address, "pending")
        self._prepare_dirs(target.parent)
        atomic_write(target, _json_bytes(material))
        return f"file:{target}"

    def read_pending(self, address: str) -> KeyMaterial | None:
        return self._read(self.path(address, "pending"))

    def discard_pending(self, address: str) -> None:
        unlink_durably(self.path(address, "pending"))

    def read_current(self, address: str) -> KeyMaterial | None:
        return self._read(self.path(address, "current"))

    def read_held(self, address: str) -> list[KeyMaterial]:
        paths = [*self._held_paths(address), self.path(address, LEGACY_PREVIOUS)]
        found = [m for m in map(self._read, paths) if m is not None and m.address == address]
        return held_in_order(found, self.read_current(address))

    def exists(self, address: str) -> bool:
        return self.path(address, "current").is_file()

    def discard_partial_writes(self, address: str) -> None:
        current = self.path(address, "current")
        remove_partial_writes(current.parent, current.stem + ".")

    def promote(self, address: str, generation: int | None = None) -> None:
        self.check(address)
        pending, current = self.path(address, "pending"), self.path(address, "current")
        incoming = self._read(pending)
        if incoming is None:
            _already_promoted(self.read_current(address), address, generation, self.spec)
            return
        self._hold_current(address, incoming)
        atomic_rename(pending, current)
        unlink_durably(self.path(address, LEGACY_REVOKED))

    def make_current(self, address: str, generation: int) -> None:
        self.check(address)
        held = self._held_source(address, generation)
        if held is None:
            _already_current(self.read_current(address), address, generation, self.spec)
            return
        source, chosen = held
        self._hold_current(address, chosen)
        atomic_rename(source, self.path(address, "current"))

    def destroy(self, address: str, api_key: str) -> None:
        self.check(address)
        unreadable: CorruptMaterial | None = None
        for path in self._material_paths(address):
            try:
                material = self._read(path)
            except CorruptMaterial as exc:
                unreadable = exc
                continue
            if material is not None and material.api_key == api_key:
                unlink_durably(path)
        unlink_durably(self.path(address, LEGACY_REVOKED))
        if unreadable is not None:
            raise unreadable

    def rename(self, old_address: str, new_address: str) -> None:
        """Write every file of the key under its new name, durably, then unlink the old files:
        a crash leaves a whole copy under one name or both, never neither."""
        self.check(old_address)
        self.check(new_address)
        if old_address == new_address:
            return
        moves = self._renamed_copies(old_address, new_address)
        for target, material in moves.values():
            check_safe(target, self.project_dir, self._git)
            self._refuse_other_material(target, material)
        for target, material in moves.values():
            if self._read(target) is None:
                self._prepare_dirs(target.parent)
                atomic_write(target, _json_bytes(material))
        for source in moves:
            unlink_durably(source)
        unlink_durably(self.path(old_address, LEGACY_REVOKED))

    def _renamed_copies(
        self, old_address: str, new_address: str
    ) -> dict[Path, tuple[Path, KeyMaterial]]:
        """old file -> (new file, its material readdressed) for every file the key has."""
        sources = [
            self.path(old_address, "current"),
            self.path(old_address, "pending"),
            *self._held_paths(old_address),
            self.path(old_address, LEGACY_PREVIOUS),
        ]
        moves: dict[Path, tuple[Path, KeyMaterial]] = {}
        planned: dict[Path, KeyMaterial] = {}
        for source in sources:
            found = self._read(source)
            if found is None:
                continue
            material = readdressed(found, new_address)
            target = self._renamed_path(source, old_address, material)
            if target in planned and not same_material(planned[target], material):
                raise SinkConflict(_generation_taken(source, material.generation))
            planned[target] = material
            moves[source] = (target, material)
        return moves

    def _renamed_path(self, source: Path, old_address: str, material: KeyMaterial) -> Path:
        """Where a file of the key goes: the same slot (the old previous slot: its own held
        generation's file)."""
        for slot in ("current", "pending"):
            if source == self.path(old_address, slot):
                return self.path(material.address, slot)
        return self.held_path(material.address, material.generation)

    def _refuse_other_material(self, target: Path, material: KeyMaterial) -> None:
        existing = self._read(target)
        if existing is not None and not same_material(existing, material):
            raise SinkConflict(
                f"{target} already holds another key than the one renamed to it"
                f" ({material.address} generation {material.generation}); look at both"
                " before removing either"
            )

    def _hold_current(self, address: str, incoming: KeyMaterial) -> None:
        """Keep the current generation as held before `incoming` replaces it."""
        current = self.path(address, "current")
        old = self._read(current)
        if old is None or same_key(old, incoming):
            return
        target = self.held_path(address, old.generation)
        check_safe(target, self.project_dir, self._git)
        held = self._read(target)
        if held is None:
            atomic_write(target, current.read_bytes())
        elif not same_key(held, old):
            raise SinkConflict(_generation_taken(target, old.generation))

    def _held_source(self, address: str, generation: int) -> tuple[Path, KeyMaterial] | None:
        """The file holding held `generation` (its own, or the old previous slot) and what
        it holds."""
        for path in (self.held_path(address, generation), self.path(address, LEGACY_PREVIOUS)):
            material = self._read(path)
            if material is not None and material.generation == generation:
                return path, material
        return None

    def _held_paths(self, address: str) -> list[Path]:
        sub, label = split_address(address)
        pattern = re.compile(rf"{re.escape(label)}\.g(\d+)\.json")
        try:
            names = os.listdir(self.root / sub)
        except FileNotFoundError:
            return []
        found = {int(m[1]): m[0] for m in map(pattern.fullmatch, names) if m}
        return [self.root / sub / found[generation] for generation in sorted(found)]

    def _material_paths(self, address: str) -> list[Path]:
        """Every file that may hold material of this key."""
        return [*(self.path(address, slot) for slot in SLOTS), *self._held_paths(address)]

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


def _json_bytes(material: KeyMaterial) -> bytes:
    return json.dumps(material_to_json(material), indent=2).encode() + b"\n"


def _generation_taken(path: Path, generation: int) -> str:
    return (
        f"{path} already holds another key of generation {generation}; two keys of one"
        " generation cannot both be kept. Look at both before removing either"
    )


def _already_current(current: KeyMaterial | None, address: str, generation: int, spec: str) -> None:
    if current is not None and current.generation == generation:
        return
    raise NoSuchGeneration(f"{spec}: no material of {address} generation {generation} to use")


def _already_promoted(
    current: KeyMaterial | None, address: str, generation: int | None, spec: str
) -> None:
    if current is not None and generation is not None and current.generation == generation:
        return
    raise NoPendingKey(f"{spec}: no pending key material for {address} to promote")
