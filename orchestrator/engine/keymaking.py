"""Making keys: a create, and the steps of a rotation.

A create (or the create step of a rotation) is one journal operation from before the key
material exists until the key is recorded in state and its material promoted: the outcome is
written only then. A crash anywhere in between leaves the intent open, and recovery finishes
the job (material and key both there) or undoes it (key deleted).

Key material goes to its sink before the key counts as made: an ed25519 private key before
the public key is registered, an HMAC secret before the key is recorded (and the key is
deleted again if the secret cannot be stored). An ambiguous create is reconciled by looking
for its apiName, never by creating again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from pydantic import SecretStr

from orchestrator.engine import crashpoints, transitions
from orchestrator.engine.changeset import CreateKey, DeleteKey, Rotate
from orchestrator.engine.deletes import Deleter
from orchestrator.engine.ledger import (
    ActionFailed,
    Ledger,
    mask,
    quietly_async,
    safe,
)
from orchestrator.engine.material import SinkIO
from orchestrator.engine.switching import StepsFailed, Switcher, has_steps
from orchestrator.exchange.errors import AmbiguousOutcome, ExchangeError
from orchestrator.exchange.interface import Exchange
from orchestrator.exchange.models import ApiKey, CreatedKey
from orchestrator.sinks import KeyMaterial
from orchestrator.store.state import KeyRecord

KeyChange = CreateKey | Rotate


class KeyMaker:
    def __init__(
        self,
        exchange: Exchange,
        ledger: Ledger,
        sinks: SinkIO,
        deleter: Deleter,
        clock: Callable[[], datetime],
        switcher: Switcher,
    ) -> None:
        self.exchange = exchange
        self.ledger = ledger
        self.sinks = sinks
        self.deleter = deleter
        self.clock = clock
        self.switcher = switcher

    async def create_key(self, action: CreateKey) -> str:
        action = replace(action, email=self.ledger.email_of(action))
        op, created = await self._make_key(action, op_name="create_key")
        await self._store_material(action, created, op, promote=True)
        await self.ledger.commit(
            transitions.key_made(self.ledger.state, action, created.api_key, self.clock())
        )
        crashpoints.reached("after_state")
        await self.ledger.outcome(
            op, result={"api_key": created.api_key, "api_name": created.api_name}
        )
        await self.ledger.audit("create_key", action, api_key=created.api_key)
        message = f"created {action.api_name} ({mask(created.api_key)})"
        record = self.ledger.state.keys.get(action.address)
        if has_steps(action) and record is not None and record.previous:
            await self._switch(action, created.api_key, message)  # bots held another key
            message += "; reload/check succeeded"
        return message

    async def rotate(self, action: Rotate) -> str:
        """The rotation steps: create next generation (material pending), record, verify,
        promote, and delete the replaced key now if grace is zero. A failed verification or
        promotion rolls back: the new key is deleted and the old one stays current."""
        before = self.ledger.state.keys.get(action.address)
        op, created = await self._make_key(
            action,
            op_name="rotate_create",
            before=before.model_dump(mode="json") if before else None,
        )
        await self._store_material(action, created, op, promote=False)
        await self.ledger.commit(
            transitions.key_made(self.ledger.state, action, created.api_key, self.clock())
        )
        crashpoints.reached("after_state")
        try:
            if action.verify:
                await self._verify(action, created)
            await self.sinks.promote(action.sink, action.address)
        except Exception as exc:
            await self._roll_back(action, op, created, before, exc)
        crashpoints.reached("after_promote")
        await self.ledger.outcome(
            op, result={"api_key": created.api_key, "api_name": created.api_name}
        )
        await self.ledger.audit(
            "rotate", action, api_key=created.api_key, detail={"from": mask(action.api_key)}
        )
        message = f"rotated to {action.api_name} ({mask(created.api_key)})"
        if has_steps(action):
            await self._switch(action, created.api_key, message)
            message += "; reload/check succeeded"
        if action.grace_s <= 0:
            warnings = await self.deleter.delete(_replaced(action, "grace 0s"))
            message = "; ".join([message + "; previous key deleted", *warnings])
        return message

    async def _switch(self, action: KeyChange, api_key: str, done: str) -> None:
        """The key's reload/check steps for its new generation; a failure says what was
        done before it."""
        try:
            await self.switcher.switch(action, api_key, action.generation, action.api_name)
        except StepsFailed as exc:
            raise ActionFailed(f"{action.address}: {done}, but {exc.detail}") from None

    async def _roll_back(
        self,
        action: Rotate,
        op: str,
        created: CreatedKey,
        before: KeyRecord | None,
        cause: Exception,
    ) -> None:
        """Undo a rotation whose new key failed verification (or could not be promoted).

        A `rotate_rollback` intent (with the old record and the rotate op it undoes) is
        opened before the rotate op is closed and before anything is undone: the journal
        never goes without an open entry naming the new key, so that recovery, after a crash
        anywhere in here, finishes the rollback instead of adopting the new key or leaving
        it live with nobody holding its material. Then: state back to the old key, the
        pending material dropped, the new key deleted.
        """
        why = cause if isinstance(cause, ActionFailed | ExchangeError) else safe(cause)
        undo = await self.ledger.intent(
            "rotate_rollback",
            replace(action, api_key=created.api_key),
            before=before.model_dump(mode="json") if before else None,
            undoes=op,
        )
        crashpoints.reached("rollback_begun")
        await self.ledger.outcome(op, error=f"rolling back: {why}")
        await self.ledger.commit(
            transitions.record_restored(self.ledger.state, action.address, before)
        )
        crashpoints.reached("after_rollback_state")
        await quietly_async(lambda: self.sinks.discard_pending(action.sink, action.address))
        await self._delete_orphan(action, created.api_key, op)
        await self.ledger.outcome(undo, result={"deleted": mask(created.api_key)})
        await self.ledger.audit(
            "rotate", action, api_key=created.api_key, outcome="rolled_back", detail=str(why)
        )
        raise ActionFailed(
            f"{action.address}: rotation rolled back: {why}; the new key was deleted and "
            f"{mask(action.api_key)} stays current"
        )

    async def _make_key(
        self, action: KeyChange, *, op_name: str, **journaled: object
    ) -> tuple[str, CreatedKey]:
        """Create the key, key material first. Returns (journal op, live key) with the op left
        open for the caller to close, or raises ActionFailed/ExchangeError (op closed).
        `journaled` goes into the intent, for recovery."""
        await self.sinks.check(action.sink, action.address)
        op = await self.ledger.intent(op_name, action, **journaled)
        public_pem = None
        if action.key_type == "ed25519":
            public_pem = await self._store_private_key(action, op)
        crashpoints.reached("before_create")
        try:
            created = await self.exchange.create_api_key(
                _email(action),
                action.api_name,
                action.permissions,
                action.ips,
                public_key_pem=public_pem,
            )
        except AmbiguousOutcome as exc:
            created = await self._reconcile_create(action, op, exc)
        except ExchangeError as exc:
            await quietly_async(lambda: self.sinks.discard_pending(action.sink, action.address))
            await self.ledger.outcome(op, error=exc)
            await self.ledger.audit(op_name, action, outcome="failed", detail=str(exc))
            raise
        crashpoints.reached("after_create")
        return op, created

    async def _store_private_key(self, action: KeyChange, op: str) -> str:
        """Generate an ed25519 key pair and store the private key as pending; returns the
        public key to register."""
        from orchestrator.exchange.signing import generate_ed25519

        private_pem, public_pem = generate_ed25519()
        try:
            await self.sinks.write_pending(action.sink, self._material(action, None, private_pem))
        except Exception as exc:
            await self.ledger.outcome(op, error=f"sink failure: {safe(exc)}")
            raise ActionFailed(
                f"{action.address}: could not store the private key in {action.sink} "
                f"({safe(exc)}); no key was created"
            ) from None
        crashpoints.reached("after_pending_material")
        return public_pem

    async def _reconcile_create(
        self, action: KeyChange, op: str, exc: AmbiguousOutcome
    ) -> CreatedKey:
        """A create whose outcome is unknown: look for its apiName, never create again."""
        found = await self._find_by_name(_email(action), action.api_name)
        if found is None:
            await quietly_async(lambda: self.sinks.discard_pending(action.sink, action.address))
            await self.ledger.outcome(op, error="ambiguous outcome; key not live")
            raise ActionFailed(
                f"{action.address}: the create had an unknown outcome ({exc.message}) and no key "
                f"named {action.api_name} is live; nothing was created. Re-run apply."
            ) from None
        if action.key_type != "ed25519":
            await self._delete_orphan(action, found.api_key, op)
            await self.ledger.outcome(op, error="ambiguous outcome; HMAC secret lost, key deleted")
            raise ActionFailed(
                f"{action.address}: the create had an unknown outcome; the key was made but "
                "Binance returns an HMAC secret only once, so it was deleted again. Re-run apply."
            ) from None
        return CreatedKey(
            email=found.email,
            api_name=found.api_name,
            api_key=found.api_key,
            permissions=found.permissions,
            restricted=bool(action.ips),
            ips=action.ips,
        )

    async def _find_by_name(self, email: str, api_name: str) -> ApiKey | None:
        rows = await self.exchange.list_all_api_keys(email)
        return next((r for r in rows if r.api_name == api_name), None)

    async def _delete_orphan(self, action: KeyChange, api_key: str, cause_op: str) -> None:
        """Delete a key we made but cannot keep. An ambiguous delete is confirmed by reading."""
        orphan = DeleteKey(
            subaccount=action.subaccount,
            label=action.label,
            email=_email(action),
            api_key=api_key,
            api_name=action.api_name,
            permissions=action.permissions,
            reason="its key material could not be kept",
        )
        op = await self.ledger.intent("delete_orphan", orphan)
        try:
            await self.exchange.delete_api_key(orphan.email, api_key)
        except AmbiguousOutcome:
            page = await self.exchange.list_api_keys(orphan.email, api_key=api_key)
            if page.rows:
                await self.ledger.outcome(op, error="ambiguous outcome; key still live")
                raise ActionFailed(
                    f"{action.address}: could not delete the unusable key {mask(api_key)}; "
                    "the next apply deletes it"
                ) from None
        await self.ledger.outcome(op, result={"deleted": mask(api_key), "cause": cause_op})
        await self.ledger.audit(
            "delete_key", orphan, api_key=api_key, detail="secret could not be kept"
        )

    async def _store_material(
        self, action: KeyChange, created: CreatedKey, op: str, *, promote: bool
    ) -> None:
        """Put the key's material in its sink as pending (and current unless rotating).

        A key whose material cannot be stored is deleted again rather than left live with no
        one holding its secret (for HMAC the secret exists only in this response).
        """
        try:
            if action.key_type == "ed25519":
                pending = await self.sinks.read_pending(action.sink, action.address)
                if pending is None:
                    raise ActionFailed(f"{action.address}: pending private key vanished from sink")
                material = replace(pending, api_key=created.api_key)
            elif created.secret is None:
                raise ActionFailed(f"{action.address}: Binance returned no secret for the key")
            else:
                material = self._material(action, created.api_key, created.secret)
            await self.sinks.write_pending(action.sink, material)
            crashpoints.reached("after_material")
            if promote:
                await self.sinks.promote(action.sink, action.address)
        except Exception as exc:  # any sink failure: never leave a key nobody can use
            reason = safe(exc)
            await quietly_async(lambda: self.sinks.discard_pending(action.sink, action.address))
            await self._delete_orphan(action, created.api_key, op)
            await self.ledger.outcome(op, error=f"sink failure, key deleted: {reason}")
            name = "rotate" if isinstance(action, Rotate) else "create_key"
            await self.ledger.audit(name, action, outcome="failed", detail=reason)
            raise ActionFailed(
                f"{action.address}: could not store the key material in {action.sink} "
                f"({reason}); the key was deleted again"
            ) from None

    async def _verify(self, action: Rotate, created: CreatedKey) -> None:
        from orchestrator.exchange.interface import Signer
        from orchestrator.exchange.signing import HmacSigner, from_pem

        material = await self.sinks.read_pending(action.sink, action.address)
        if material is None:
            raise ActionFailed(f"{action.address}: no pending material to verify with")
        signer: Signer
        if action.key_type == "ed25519":
            signer = from_pem(created.api_key, material.secret.get_secret_value().encode())
        else:
            signer = HmacSigner(created.api_key, material.secret)
        seen = await self.exchange.api_restrictions(signer)
        if seen.permissions != action.permissions or seen.enable_withdrawals:
            raise ActionFailed(
                f"{action.address}: verification failed: the new key reports permissions "
                f"{sorted(p.value for p in seen.permissions)}, expected "
                f"{sorted(p.value for p in action.permissions)}"
            )

    def _material(self, action: KeyChange, api_key: str | None, secret: SecretStr) -> KeyMaterial:
        return KeyMaterial(
            address=action.address,
            subaccount=action.subaccount,
            label=action.label,
            api_key=api_key,
            key_type=action.key_type,
            secret=secret,
            created_at=self.clock(),
            generation=action.generation,
        )


def _email(action: KeyChange) -> str:
    if action.email is None:  # the executor fills it in before any call
        raise ActionFailed(f"{action.address}: no sub-account email")
    return action.email


def _replaced(rotation: Rotate, reason: str) -> DeleteKey:
    """The delete of the key a rotation replaced."""
    return DeleteKey(
        subaccount=rotation.subaccount,
        label=rotation.label,
        email=rotation.email,
        api_key=rotation.api_key,
        api_name=rotation.replaced_name,
        permissions=rotation.permissions,
        reason=reason,
    )
