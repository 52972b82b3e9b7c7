"""`dotenv:PATH`: the file a bot loads, one per key.

    BINANCE_API_KEY=...
    BINANCE_API_SECRET=...                    (hmac)
    BINANCE_PRIVATE_KEY_PATH=/abs/PATH.g3.pem (ed25519: a 0600 PEM beside it)

plus `ORCHESTRATOR_*` lines that say which key and generation the file holds. Pending and
previous material live in `PATH.pending` and `PATH.previous`; the PEM is named by
generation, so promoting is a rename and never rewrites a path a bot may hold.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from pydantic import SecretStr, ValidationError

from orchestrator.sinks.errors import CorruptMaterial, NoPendingKey, SinkConflict
from orchestrator.sinks.material import KeyMaterial, split_address
from orchestrator.sinks.paths import check_safe
from orchestrator.store.atomic import (
    atomic_rename,
    atomic_write,
    ensure_private_dir,
    unlink_durably,
)

_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9+/=_.:@,-]*$")
SLOTS = {"current": "", "pending": ".pending", "previous": ".previous", "revoked": ".revoked"}


def _quote(value: str) -> str:
    if _PLAIN_VALUE.match(value):
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
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        values[name.strip()] = _unquote(value)
    return values


class DotenvSink:
    def __init__(self, path: Path, project_dir: Path, spec: str) -> None:
        self.env_path = Path(path)
        self.project_dir = Path(project_dir)
        self.spec = spec
        self._address: str | None = None
        self._cleared: set[Path] = set()

    def slot_path(self, slot: str) -> Path:
        return self.env_path.with_name(self.env_path.name + SLOTS[slot])

    def pem_path(self, generation: int) -> Path:
        return self.env_path.with_name(f"{self.env_path.name}.g{generation}.pem")

    def check(self, address: str) -> None:
        split_address(address)
        self._claim(address)
        for slot in SLOTS:
            check_safe(self.slot_path(slot), self.project_dir, self._cleared)

    def write_pending(self, material: KeyMaterial) -> str:
        self.check(material.address)
        pem = self.pem_path(material.generation)
        if material.key_type == "ed25519":
            check_safe(pem, self.project_dir, self._cleared)
        self._check_owner("current", material.address)
        self._check_owner("pending", material.address)
        ensure_private_dir(self.env_path.parent)
        self._drop_replaced_pending_pem(material.generation)
        if material.key_type == "ed25519":
            atomic_write(pem, material.secret.get_secret_value().encode())
        target = self.slot_path("pending")
        atomic_write(target, self._render(material).encode())
        return f"dotenv:{target}"

    def read_pending(self, address: str) -> KeyMaterial | None:
        return self._read("pending", address)

    def discard_pending(self, address: str) -> None:
        pending = self.read_pending(address)
        if pending is None:
            return
        current = self._read("current", address)
        if pending.key_type == "ed25519" and (
            current is None or current.generation != pending.generation
        ):
            unlink_durably(self.pem_path(pending.generation))
        unlink_durably(self.slot_path("pending"))

    def read_current(self, address: str) -> KeyMaterial | None:
        return self._read("current", address)

    def read_previous(self, address: str) -> KeyMaterial | None:
        return self._read("previous", address)

    def exists(self, address: str) -> bool:
        return self._read("current", address) is not None

    def promote(self, address: str, generation: int | None = None) -> None:
        self.check(address)
        pending, current = self.slot_path("pending"), self.slot_path("current")
        if not pending.exists():
            material = self.read_current(address)
            if material is None or generation is None or material.generation != generation:
                raise NoPendingKey(f"{self.spec}: no pending key material for {address}")
            return
        self._read("pending", address)  # refuses another key's file
        if current.exists():
            self._read("current", address)
            atomic_write(self.slot_path("previous"), current.read_bytes())
        atomic_rename(pending, current)

    def mark_revoked(self, address: str) -> None:
        self.check(address)
        if self._read("current", address) is not None:
            atomic_rename(self.slot_path("current"), self.slot_path("revoked"))

    def delete_previous(self, address: str) -> None:
        previous = self._read("previous", address)
        if previous is None:
            return
        current = self._read("current", address)
        if previous.key_type == "ed25519" and (
            current is None or current.generation != previous.generation
        ):
            unlink_durably(self.pem_path(previous.generation))
        unlink_durably(self.slot_path("previous"))

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

    def _drop_replaced_pending_pem(self, generation: int) -> None:
        pending = self.slot_path("pending")
        if not pending.exists():
            return
        old = parse_dotenv(pending.read_text()).get("ORCHESTRATOR_GENERATION", "")
        if old.isdigit() and int(old) != generation:
            unlink_durably(self.pem_path(int(old)))

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

    def _read(self, slot: str, address: str) -> KeyMaterial | None:
        path = self.slot_path(slot)
        try:
            values = parse_dotenv(path.read_text())
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise CorruptMaterial(f"{path} is not a text dotenv file") from None
        held = values.get("ORCHESTRATOR_ADDRESS")
        if held != address:
            raise SinkConflict(_not_ours(path, held, address))
        return self._material(values, path)

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
                key_type=key_type,
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


def _not_ours(path: Path, held: str | None, address: str) -> str:
    return (
        f"{path} holds {held or 'a key the orchestrator did not write'}, not {address};"
        " a dotenv file holds one key: give each key its own dotenv path"
    )
