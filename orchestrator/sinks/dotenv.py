"""`dotenv:PATH`: the file a bot loads, one per key.

    BINANCE_API_KEY=...
    BINANCE_API_SECRET=...                    (hmac)
    BINANCE_PRIVATE_KEY_PATH=/abs/PATH.g3.pem (ed25519: a 0600 PEM beside it)

plus `ORCHESTRATOR_*` lines that say which key and generation the file holds. Pending
material lives in `PATH.pending`, each held generation in `PATH.g<N>`; the PEM is named by
generation, so promoting is a rename and never rewrites a path a bot may hold. Earlier
versions kept one `PATH.previous` (still read as held) and `PATH.revoked` (a deleted key's:
removed on the next write, with every PEM no env file names any more).
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import cast

from pydantic import SecretStr, ValidationError

from orchestrator.sinks.errors import (
    CorruptMaterial,
    NoPendingKey,
    NoSuchGeneration,
    SinkConflict,
)
from orchestrator.sinks.material import (
    KeyMaterial,
    KeyType,
    held_in_order,
    same_key,
    split_address,
)
from orchestrator.sinks.paths import GitCheck, check_safe
from orchestrator.store.atomic import (
    atomic_rename,
    atomic_write,
    ensure_private_dir,
    remove_partial_writes,
    unlink_durably,
)

_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9+/=_.:@,-]*$")
SLOTS = {"current": "", "pending": ".pending", "previous": ".previous", "revoked": ".revoked"}
LIVE_SLOTS = ("current", "pending", "previous")


def _quote(value: str) -> str:
    if _PLAIN_VALUE.fullmatch(value):
        return value
    if "'" in value or "\n" in value:
        raise SinkConflict("a value with a quote or newline cannot be written to a dotenv file")
    return f"'{value}'"


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_dotenv(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        values[name.strip()] = _unquote(value)
    return values


class DotenvSink:
    def __init__(
        self, path: Path, project_dir: Path, spec: str, git: GitCheck | None = None
    ) -> None:
        self.env_path = Path(path)
        self.project_dir = Path(project_dir)
        self.spec = spec
        self._address: str | None = None
        self._git = git or GitCheck()

    def slot_path(self, slot: str) -> Path:
        return self.env_path.with_name(self.env_path.name + SLOTS[slot])

    def held_path(self, generation: int) -> Path:
        return self.env_path.with_name(f"{self.env_path.name}.g{generation}")

    def pem_path(self, generation: int) -> Path:
        return self.env_path.with_name(f"{self.env_path.name}.g{generation}.pem")

    def paths(self, address: str) -> list[Path]:
        """The env files, and the private key file of a first generation: what git must
        ignore (a pattern that ignores one generation's key file ignores them all)."""
        split_address(address)
        return [*self._material_paths(), self.pem_path(1)]

    def check(self, address: str) -> None:
        paths = self.paths(address)
        self._claim(address)
        for path in paths:
            check_safe(path, self.project_dir, self._git)

    def write_pending(self, material: KeyMaterial) -> str:
        self.check(material.address)
        pem = self.pem_path(material.generation)
        if material.key_type == "ed25519":
            check_safe(pem, self.project_dir, self._git)
        self._check_owner("current", material.address)
        self._check_owner("pending", material.address)
        self._refuse_taken_generation(material)
        ensure_private_dir(self.env_path.parent)
        if material.key_type == "ed25519":
            atomic_write(pem, material.secret.get_secret_value().encode())
        target = self.slot_path("pending")
        atomic_write(target, self._render(material).encode())
        self._sweep_deleted()
        return f"dotenv:{target}"

    def read_pending(self, address: str) -> KeyMaterial | None:
        return self._read_for_reader(self.slot_path("pending"), address)

    def discard_pending(self, address: str) -> None:
        pending = self.slot_path("pending")
        if self._owned_values(pending, address) is None:
            return
        unlink_durably(pending)
        self._sweep_deleted()

    def read_current(self, address: str) -> KeyMaterial | None:
        return self._read_for_reader(self.slot_path("current"), address)

    def read_held(self, address: str) -> list[KeyMaterial]:
        paths = [*self._held_paths(), self.slot_path("previous")]
        found = [m for m in (self._read_for_reader(p, address) for p in paths) if m is not None]
        return held_in_order(found, self.read_current(address))

    def exists(self, address: str) -> bool:
        return self.read_current(address) is not None

    def discard_partial_writes(self, address: str) -> None:
        remove_partial_writes(self.env_path.parent, self.env_path.name + ".")

    def promote(self, address: str, generation: int | None = None) -> None:
        self.check(address)
        pending = self.slot_path("pending")
        incoming = self._read(pending, address)
        if incoming is None:
            material = self.read_current(address)
            if material is None or generation is None or material.generation != generation:
                raise NoPendingKey(f"{self.spec}: no pending key material for {address}")
            return
        self._hold_current(address, incoming)
        atomic_rename(pending, self.slot_path("current"))
        self._sweep_deleted()

    def make_current(self, address: str, generation: int) -> None:
        self.check(address)
        held = self._held_source(address, generation)
        if held is None:
            current = self.read_current(address)
            if current is None or current.generation != generation:
                raise NoSuchGeneration(
                    f"{self.spec}: no material of {address} generation {generation} to use"
                )
            return
        source, chosen = held
        self._hold_current(address, chosen)
        atomic_rename(source, self.slot_path("current"))

    def destroy(self, address: str, api_key: str) -> None:
        """Remove every env file naming `api_key`, then the PEMs no env file names any more."""
        self.check(address)
        for path in self._material_paths():
            values = self._owned_values(path, address)
            if values is not None and values.get("BINANCE_API_KEY") == api_key:
                unlink_durably(path)
        self._sweep_deleted()

    def rename(self, old_address: str, new_address: str) -> None:
        """Rewrite the address lines of every env file of the key in place, each atomically;
        the BINANCE_* lines a bot reads, the file names and the PEMs stay as they are. From
        here on, this sink is for `new_address` only."""
        split_address(old_address)
        split_address(new_address)
        if self._address not in (None, old_address, new_address):
            self._claim(old_address)
        paths = [path for path in self._material_paths() if path != self.slot_path("revoked")]
        for path in paths:
            check_safe(path, self.project_dir, self._git)
        texts = {path: self._text_of(path, (old_address, new_address)) for path in paths}
        if old_address != new_address:
            for path, text in texts.items():
                if text is not None and _address_in(text) == old_address:
                    atomic_write(path, _readdressed(text, old_address, new_address).encode())
        self._sweep_deleted()
        self._address = new_address

    def _text_of(self, path: Path, addresses: tuple[str, ...]) -> str | None:
        """An env file's text when it holds one of `addresses`, None when absent; a file of
        another key is refused."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise CorruptMaterial(f"{path} is not a text dotenv file") from None
        held = _address_in(text)
        if held not in addresses:
            raise SinkConflict(_not_ours(path, held, addresses[0]))
        return text

    def _hold_current(self, address: str, incoming: KeyMaterial) -> None:
        """Keep the current generation as held before `incoming` replaces it."""
        current = self.slot_path("current")
        old = self._read(current, address)
        if old is None or same_key(old, incoming):
            return
        target = self.held_path(old.generation)
        check_safe(target, self.project_dir, self._git)
        held = self._read(target, address)
        if held is None:
            atomic_write(target, current.read_bytes())
        elif not same_key(held, old):
            raise SinkConflict(_generation_taken(target, old.generation))

    def _held_source(self, address: str, generation: int) -> tuple[Path, KeyMaterial] | None:
        """The env file holding held `generation` (its own, or the old previous slot) and
        what it holds."""
        for path in (self.held_path(generation), self.slot_path("previous")):
            material = self._read(path, address)
            if material is not None and material.generation == generation:
                return path, material
        return None

    def _refuse_taken_generation(self, material: KeyMaterial) -> None:
        """A PEM is named by generation: never overwrite the private key of a kept one."""
        pem = self.pem_path(material.generation)
        if material.key_type != "ed25519" or not pem.exists():
            return
        if pem.read_bytes() == material.secret.get_secret_value().encode():
            return
        if material.generation in self._named_generations(include_pending=False):
            raise SinkConflict(_generation_taken(pem, material.generation))

    def _sweep_deleted(self) -> None:
        """Remove what only deleted keys left: the old revoked slot, and PEMs no env file
        (current, pending or held) names."""
        unlink_durably(self.slot_path("revoked"))
        named = self._named_generations(include_pending=True)
        for generation, pem in self._numbered(r"\.g(\d+)\.pem"):
            if generation not in named:
                unlink_durably(pem)

    def _named_generations(self, include_pending: bool) -> set[int]:
        """Generations whose PEM some kept env file names (read leniently: when in doubt, a
        generation counts as named)."""
        paths = [
            self.slot_path(slot) for slot in LIVE_SLOTS if include_pending or slot != "pending"
        ]
        named: set[int] = set()
        for path in [*paths, *self._held_paths()]:
            try:
                values = parse_dotenv(path.read_text(errors="replace"))
            except FileNotFoundError:
                continue
            generation = values.get("ORCHESTRATOR_GENERATION", "")
            if generation.isdigit():
                named.add(int(generation))
            named.update(self._pem_generation(values.get("BINANCE_PRIVATE_KEY_PATH", "")))
        return named

    def _pem_generation(self, pem_path: str) -> set[int]:
        found = re.fullmatch(rf"{re.escape(self.env_path.name)}\.g(\d+)\.pem", Path(pem_path).name)
        return {int(found[1])} if found else set()

    def _held_paths(self) -> list[Path]:
        return [path for _, path in self._numbered(r"\.g(\d+)")]

    def _numbered(self, suffix: str) -> list[tuple[int, Path]]:
        """(N, path) of the files beside the env file named `<name><suffix>`, ascending."""
        pattern = re.compile(re.escape(self.env_path.name) + suffix)
        try:
            names = os.listdir(self.env_path.parent)
        except FileNotFoundError:
            return []
        found = [
            (int(m[1]), self.env_path.with_name(m[0])) for m in map(pattern.fullmatch, names) if m
        ]
        return sorted(found)

    def _material_paths(self) -> list[Path]:
        return [*(self.slot_path(slot) for slot in SLOTS), *self._held_paths()]

    def _claim(self, address: str) -> None:
        """One dotenv file holds one key: a second address is a configuration error."""
        if self._address is None:
            self._address = address
        elif self._address != address:
            raise SinkConflict(
                f"{self.spec} is used for both {self._address} and {address}; a bot's dotenv"
                " file holds one key: give each key its own dotenv path"
            )

    def _check_owner(self, slot: str, address: str) -> None:
        path = self.slot_path(slot)
        try:
            held = parse_dotenv(path.read_text(errors="replace")).get("ORCHESTRATOR_ADDRESS")
        except FileNotFoundError:
            return
        if held != address:
            raise SinkConflict(_not_ours(path, held, address))

    def _render(self, material: KeyMaterial) -> str:
        lines = [
            f"# Managed by orchestrator: {material.address} generation {material.generation}."
            " Do not edit; rotations replace this file.",
            f"BINANCE_API_KEY={_quote(material.api_key or '')}",
        ]
        if material.key_type == "ed25519":
            lines.append(
                f"BINANCE_PRIVATE_KEY_PATH={_quote(str(self.pem_path(material.generation)))}"
            )
        else:
            lines.append(f"BINANCE_API_SECRET={_quote(material.secret.get_secret_value())}")
        lines += [
            f"ORCHESTRATOR_ADDRESS={_quote(material.address)}",
            f"ORCHESTRATOR_KEY_TYPE={material.key_type}",
            f"ORCHESTRATOR_GENERATION={material.generation}",
            f"ORCHESTRATOR_CREATED_AT={_quote(material.created_at.isoformat())}",
        ]
        return "\n".join(lines) + "\n"

    def _owned_values(self, path: Path, address: str) -> dict[str, str] | None:
        """The fields of an env file of this key (None when absent); another's is refused."""
        try:
            values = parse_dotenv(path.read_text())
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise CorruptMaterial(f"{path} is not a text dotenv file") from None
        held = values.get("ORCHESTRATOR_ADDRESS")
        if held != address:
            raise SinkConflict(_not_ours(path, held, address))
        return values

    def _read_for_reader(self, path: Path, address: str) -> KeyMaterial | None:
        """What the read methods see: a file the orchestrator wrote for another address (the
        old one of a renamed label, say) holds nothing of this key. Writes still refuse it."""
        try:
            return self._read(path, address)
        except SinkConflict:
            if _orchestrator_address(path) is None:
                raise
            return None

    def _read(self, path: Path, address: str) -> KeyMaterial | None:
        values = self._owned_values(path, address)
        return None if values is None else self._material(values, path)

    def _material(self, values: dict[str, str], path: Path) -> KeyMaterial:
        sub, label = split_address(values["ORCHESTRATOR_ADDRESS"])
        try:
            key_type = values["ORCHESTRATOR_KEY_TYPE"]
            if key_type == "ed25519":
                secret = Path(values["BINANCE_PRIVATE_KEY_PATH"]).read_text()
            else:
                secret = values["BINANCE_API_SECRET"]
            return KeyMaterial(
                subaccount=sub,
                label=label,
                api_key=values.get("BINANCE_API_KEY") or None,
                key_type=cast(KeyType, key_type),  # KeyMaterial validates it
                secret=SecretStr(secret),
                created_at=datetime.fromisoformat(values["ORCHESTRATOR_CREATED_AT"]),
                generation=int(values["ORCHESTRATOR_GENERATION"]),
            )
        except KeyError as exc:
            raise CorruptMaterial(f"{path} lacks {exc.args[0]}") from None
        except OSError as exc:
            raise CorruptMaterial(
                f"{path}: its private key file is unreadable ({exc.strerror})"
            ) from None
        except (ValueError, ValidationError):
            raise CorruptMaterial(f"{path} has a malformed orchestrator field") from None


def _address_in(text: str) -> str | None:
    return parse_dotenv(text).get("ORCHESTRATOR_ADDRESS")


def _orchestrator_address(path: Path) -> str | None:
    """The key address an env file the orchestrator wrote names; None for any other file."""
    try:
        named = _address_in(path.read_text(errors="replace"))
        return None if named is None else "/".join(split_address(named))
    except (OSError, ValueError):
        return None


def _readdressed(text: str, old_address: str, new_address: str) -> str:
    """The env file's text with its address lines naming `new_address`; every other line (the
    api key and secret a bot reads) byte for byte as it was."""
    header = f"# Managed by orchestrator: {old_address} "
    lines = []
    for line in text.splitlines(keepends=True):
        name = line.strip().removeprefix("export ").partition("=")[0].strip()
        if name == "ORCHESTRATOR_ADDRESS":
            ending = line[len(line.rstrip("\r\n")) :]
            indent = line[: len(line) - len(line.lstrip())]
            export = "export " if line.strip().startswith("export ") else ""
            line = f"{indent}{export}ORCHESTRATOR_ADDRESS={_quote(new_address)}{ending}"
        elif line.startswith(header):
            line = f"# Managed by orchestrator: {new_address} {line[len(header) :]}"
        lines.append(line)
    return "".join(lines)


def _generation_taken(path: Path, generation: int) -> str:
    return (
        f"{path} already holds another key of generation {generation}; two keys of one"
        " generation cannot both be kept. Look at both before removing either"
    )


def _not_ours(path: Path, held: str | None, address: str) -> str:
    return (
        f"{path} holds {held or 'a key the orchestrator did not write'}, not {address};"
        " a dotenv file holds one key: give each key its own dotenv path"
    )
