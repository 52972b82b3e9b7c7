"""The apply executor: runs a changeset against the exchange, journaled, audited, crash-safe.

Rules it keeps (SPEC.md "Applying"):
- every mutating call is written to the journal before it is made and after it returns;
- key material goes to its sink before the key counts as made: an ed25519 private key before
  the public key is registered, an HMAC secret before the key is recorded (and the key is
  deleted again if the secret cannot be stored);
- an ambiguous outcome (5xx, timeout, reset after sending) is reconciled by reading live state
  (by apiName for creates), never by repeating a create;
- state is saved after every action, so it reflects exactly what happened.

Actions run phase by phase (sub-accounts, then updates and prune deletes, creates,
rotations, and deletes of superseded keys); actions within a phase run concurrently and the
client paces each endpoint.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.domain.naming import parse_api_name
from orchestrator.engine import crashpoints
from orchestrator.engine.changeset import Action, ActionKind, Changeset
from orchestrator.engine.diff import VIRTUAL_EMAIL_MARKER, _phase
from orchestrator.engine.recovery import drop_material, forget_key, record_made
from orchestrator.exchange.errors import AmbiguousOutcome, ExchangeError
from orchestrator.exchange.interface import Exchange
from orchestrator.exchange.models import ApiKey, CreatedKey
from orchestrator.sinks import KeyMaterial, Sink
from orchestrator.store.backend import AuditTrail, StateBackend, WriteAheadJournal
from orchestrator.store.files import next_serial
from orchestrator.store.state import KeyRecord, RetiredKey, State, SubaccountRecord


class ActionFailed(Exception):
    """An action could not be carried out; the message says what happened and what to do."""


@dataclass(frozen=True)
class ActionResult:
    action: Action
    ok: bool
    message: str


SinkOpener = Callable[[str], Sink]


class Applier:
    def __init__(
        self,
        *,
        exchange: Exchange,
        backend: StateBackend,
        state: State,
        journal: WriteAheadJournal,
        audit: AuditTrail,
        open_sink: SinkOpener,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_result: Callable[[ActionResult], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.backend = backend
        self.state = state
        self.journal = journal
        self.audit = audit
        self.open_sink = open_sink
        self.clock = clock
        self.on_result = on_result
        self.results: list[ActionResult] = []

    async def apply(self, changeset: Changeset) -> list[ActionResult]:
        for phase in sorted({_phase(a) for a in changeset.actions}):
            batch = [a for a in changeset.actions if _phase(a) == phase]
            await asyncio.gather(*(self._run(a) for a in batch))
        return self.results

    async def _run(self, action: Action) -> None:
        try:
            message = await self._dispatch(action)
            result = ActionResult(action, True, message)
        except (ActionFailed, ExchangeError) as exc:
            result = ActionResult(action, False, str(exc))
        except Exception as exc:  # a sink or store failure fails this action, not the whole apply
            result = ActionResult(action, False, f"{action.address}: {_safe(exc)}")
        self.results.append(result)
        if self.on_result:
            self.on_result(result)

    async def _dispatch(self, action: Action) -> str:
        handler = {
            ActionKind.CREATE_SUBACCOUNT: self._create_subaccount,
            ActionKind.CREATE_KEY: self._create_key,
            ActionKind.UPDATE_PERMISSIONS: self._update_permissions,
            ActionKind.UPDATE_IPS: self._update_ips,
            ActionKind.ROTATE: self._rotate,
            ActionKind.DELETE_KEY: self._delete_key,
        }[action.kind]
        return await handler(action)

    # ------------------------------------------------------------------ sub-accounts

    async def _create_subaccount(self, action: Action) -> str:
        op = self._intent("create_subaccount", action)
        crashpoints.reached("before_call")
        try:
            email = await self._make_virtual(action.virtual)
        except AmbiguousOutcome:
            email = await self._find_virtual(action.virtual)
            if email is None:
                self._outcome(op, error="ambiguous outcome; sub-account not found")
                raise ActionFailed(
                    f"creating virtual sub-account {action.virtual} had an unknown outcome and it "
                    "is not live; re-run apply"
                ) from None
        except ExchangeError as exc:
            self._outcome(op, error=exc)
            self._audit("create_subaccount", action, outcome="failed", detail=str(exc))
            raise
        crashpoints.reached("after_call")
        self.state.subaccounts[action.subaccount] = SubaccountRecord(
            name=action.subaccount, email=email, virtual=True
        )
        self._save()
        self._outcome(op, result={"email": email})
        self._audit("create_subaccount", action, detail={"email": email})
        return f"created virtual sub-account {email}"

    async def _make_virtual(self, virtual: str) -> str:
        """Create the sub-account; after an unknown outcome with no such sub-account live, once
        more: unlike a key, a second one cannot be made (Binance refuses the same name)."""
        try:
            return await self.exchange.create_virtual_subaccount(virtual)
        except AmbiguousOutcome:
            found = await self._find_virtual(virtual)
            if found is not None:
                return found
        return await self.exchange.create_virtual_subaccount(virtual)

    async def _find_virtual(self, virtual: str) -> str | None:
        prefix = f"{virtual}{VIRTUAL_EMAIL_MARKER}".lower()
        subs = await self.exchange.list_all_subaccounts()
        return next((s.email for s in subs if s.email.lower().startswith(prefix)), None)

    # ------------------------------------------------------------------ keys
    #
    # A create (or the create step of a rotation) is one journal operation from before the
    # key material exists until the key is recorded in state and its material promoted: the
    # outcome is written only then. A crash anywhere in between leaves the intent open, and
    # recovery.py finishes the job (material and key both there) or undoes it (key deleted).

    async def _create_key(self, action: Action) -> str:
        action = self._with_email(action)
        op, created = await self._make_key(action, op_name="create_key")
        await self._store_material(action, created, op, promote=True)
        self.state.keys[action.address] = self._record(action, created, previous=[])
        self._save()
        crashpoints.reached("after_state")
        self._outcome(op, result={"api_key": created.api_key, "api_name": created.api_name})
        self._audit("create_key", action, api_key=created.api_key)
        return f"created {action.api_name} ({_mask(created.api_key)})"

    async def _rotate(self, action: Action) -> str:
        """The rotation steps: create next generation (material pending), record, verify,
        promote, and delete the previous key now if grace is zero. A failed verification or
        promotion rolls back: the new key is deleted and the old one stays current."""
        old = self.state.keys.get(action.address)
        before = old.model_copy(deep=True) if old else None
        op, created = await self._make_key(action, op_name="rotate_create")
        await self._store_material(action, created, op, promote=False)
        now = self.clock()
        retired = RetiredKey(
            api_key=action.api_key,
            api_name=old.api_name if old else action.api_key,
            generation=old.generation if old else max((action.generation or 1) - 1, 0),
            retired_at=now,
            delete_after=now + timedelta(seconds=action.grace_s),
        )
        previous = (old.previous if old else []) + [retired]
        self.state.keys[action.address] = self._record(action, created, previous=previous)
        self._save()
        crashpoints.reached("after_state")
        try:
            if action.verify:
                await self._verify(action, created)
            self.open_sink(action.sink).promote(action.address)
        except Exception as exc:
            await self._roll_back(action, op, created, before, exc)
        crashpoints.reached("after_promote")
        self._outcome(op, result={"api_key": created.api_key, "api_name": created.api_name})
        self._audit(
            "rotate", action, api_key=created.api_key, detail={"from": _mask(action.api_key)}
        )
        message = f"rotated to {action.api_name} ({_mask(created.api_key)})"
        if action.grace_s <= 0:
            delete = replace(action, kind=ActionKind.DELETE_KEY, reason="grace 0s")
            warnings = await self._delete(self._with_email(delete))
            message = "; ".join([message + "; previous key deleted", *warnings])
        return message

    async def _roll_back(
        self,
        action: Action,
        op: str,
        created: CreatedKey,
        before: KeyRecord | None,
        cause: Exception,
    ) -> None:
        """Undo a rotation whose new key failed verification (or could not be promoted).

        The rotate op is closed and a `rotate_rollback` intent opened (with the old record)
        before anything is undone, so that recovery, after a crash anywhere in here, finishes
        the rollback instead of adopting the new key. Then: state back to the old key, the
        pending material dropped, the new key deleted.
        """
        why = cause if isinstance(cause, ActionFailed | ExchangeError) else _safe(cause)
        self._outcome(op, error=f"rolling back: {why}")
        undo = uuid.uuid4().hex
        self.journal.intent(
            undo,
            {
                "op": "rotate_rollback",
                **replace(action, api_key=created.api_key).to_dict(),
                "before": before.model_dump(mode="json") if before else None,
            },
        )
        if before is None:
            self.state.keys.pop(action.address, None)
        else:
            self.state.keys[action.address] = before
        self._save()
        crashpoints.reached("after_rollback_state")
        _quietly(lambda: self.open_sink(action.sink).discard_pending(action.address))
        await self._delete_orphan(action, created.api_key, op)
        self._outcome(undo, result={"deleted": _mask(created.api_key)})
        self._audit(
            "rotate", action, api_key=created.api_key, outcome="rolled_back", detail=str(why)
        )
        raise ActionFailed(
            f"{action.address}: rotation rolled back: {why}; the new key was deleted and "
            f"{_mask(action.api_key)} stays current"
        )

    async def _make_key(self, action: Action, *, op_name: str) -> tuple[str, CreatedKey]:
        """Create the key, key material first. Returns (journal op, live key) with the op left
        open for the caller to close, or raises ActionFailed/ExchangeError (op closed)."""
        sink = self.open_sink(action.sink)
        sink.check(action.address)
        op = self._intent(op_name, action)
        public_pem = None
        if action.key_type == "ed25519":
            from orchestrator.exchange.signing import generate_ed25519

            private_pem, public_pem = generate_ed25519()
            try:
                sink.write_pending(self._material(action, api_key="", secret=private_pem))
            except Exception as exc:
                self._outcome(op, error=f"sink failure: {_safe(exc)}")
                raise ActionFailed(
                    f"{action.address}: could not store the private key in {action.sink} "
                    f"({_safe(exc)}); no key was created"
                ) from None
            crashpoints.reached("after_pending_material")
        crashpoints.reached("before_create")
        try:
            created = await self.exchange.create_api_key(
                action.email,
                action.api_name,
                action.permissions,
                action.ips,
                public_key_pem=public_pem,
            )
        except AmbiguousOutcome as exc:
            created = await self._reconcile_create(action, op, exc)
        except ExchangeError as exc:
            _quietly(lambda: sink.discard_pending(action.address))
            self._outcome(op, error=exc)
            self._audit(op_name, action, outcome="failed", detail=str(exc))
            raise
        crashpoints.reached("after_create")
        return op, created

    async def _reconcile_create(self, action: Action, op: str, exc: AmbiguousOutcome) -> CreatedKey:
        """A create whose outcome is unknown: look for its apiName, never create again."""
        found = await self._find_by_name(action.email, action.api_name)
        if found is None:
            _quietly(lambda: self.open_sink(action.sink).discard_pending(action.address))
            self._outcome(op, error="ambiguous outcome; key not live")
            raise ActionFailed(
                f"{action.address}: the create had an unknown outcome ({exc.message}) and no key "
                f"named {action.api_name} is live; nothing was created. Re-run apply."
            ) from None
        if action.key_type != "ed25519":
            await self._delete_orphan(action, found.api_key, op)
            self._outcome(op, error="ambiguous outcome; HMAC secret lost, key deleted")
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

    async def _delete_orphan(self, action: Action, api_key: str, cause_op: str) -> None:
        """Delete a key we made but cannot keep. An ambiguous delete is confirmed by reading."""
        op = self._intent("delete_orphan", replace(action, api_key=api_key))
        try:
            await self.exchange.delete_api_key(action.email, api_key)
        except AmbiguousOutcome:
            page = await self.exchange.list_api_keys(action.email, api_key=api_key)
            if page.rows:
                self._outcome(op, error="ambiguous outcome; key still live")
                raise ActionFailed(
                    f"{action.address}: could not delete the unusable key {_mask(api_key)}; "
                    "the next apply deletes it"
                ) from None
        self._outcome(op, result={"deleted": _mask(api_key), "cause": cause_op})
        self._audit("delete_key", action, api_key=api_key, detail="secret could not be kept")

    async def _store_material(
        self, action: Action, created: CreatedKey, op: str, *, promote: bool
    ) -> None:
        """Put the key's material in its sink as pending (and current unless rotating).

        A key whose material cannot be stored is deleted again rather than left live with no
        one holding its secret (for HMAC the secret exists only in this response).
        """
        sink = self.open_sink(action.sink)
        try:
            if action.key_type == "ed25519":
                pending = sink.read_pending(action.address)
                if pending is None:
                    raise ActionFailed(f"{action.address}: pending private key vanished from sink")
                sink.write_pending(replace(pending, api_key=created.api_key))
            else:
                sink.write_pending(self._material(action, created.api_key, created.secret))
            crashpoints.reached("after_material")
            if promote:
                sink.promote(action.address)
        except Exception as exc:  # any sink failure: never leave a key nobody can use
            reason = _safe(exc)
            _quietly(lambda: sink.discard_pending(action.address))
            await self._delete_orphan(action, created.api_key, op)
            self._outcome(op, error=f"sink failure, key deleted: {reason}")
            self._audit(op_name_of(action), action, outcome="failed", detail=reason)
            raise ActionFailed(
                f"{action.address}: could not store the key material in {action.sink} "
                f"({reason}); the key was deleted again"
            ) from None

    async def _verify(self, action: Action, created: CreatedKey) -> None:
        from orchestrator.exchange.signing import HmacSigner, from_pem

        material = self.open_sink(action.sink).read_pending(action.address)
        if material is None:
            raise ActionFailed(f"{action.address}: no pending material to verify with")
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

    async def _update_permissions(self, action: Action) -> str:
        action = self._with_email(action)
        op = self._intent("update_permissions", action)
        crashpoints.reached("before_call")
        await self._confirmed_write(
            op,
            "update_permissions",
            action,
            "permission change",
            write=lambda: self.exchange.set_permissions(
                action.email, action.api_key, action.permissions
            ),
            took_effect=lambda: self._permissions_set(action),
        )
        crashpoints.reached("after_call")
        record = self._adopted(action)
        record.permissions = sorted(p.value for p in action.permissions)
        self._save()
        self._outcome(op, result={"permissions": record.permissions})
        self._audit("update_permissions", action, api_key=action.api_key, detail=action.reason)
        return action.reason

    async def _permissions_set(self, action: Action) -> bool:
        rows = await self.exchange.list_api_keys(action.email, api_key=action.api_key)
        return bool(rows.rows) and rows.rows[0].permissions == action.permissions

    async def _update_ips(self, action: Action) -> str:
        """At most one add call and one delete call; add first so the list is never empty.
        An ambiguous outcome is read back and, the calls being idempotent, the remaining
        difference applied once more. If a call fails, state records what the calls before it
        did."""
        action = self._with_email(action)
        op = self._intent("update_ips", action)
        crashpoints.reached("before_call")
        seen: list = []
        try:
            restriction = await self._change_ips(action, action.ips_add, action.ips_remove, seen)
        except AmbiguousOutcome:
            restriction = await self.exchange.get_ip_restriction(action.email, action.api_key)
            if _ips_of(restriction) != _planned_ips(action):
                seen.append(restriction)
                try:
                    add, remove = _ip_delta(action, restriction)
                    restriction = await self._change_ips(action, add, remove, seen)
                except ExchangeError as exc:
                    self._record_ips(action, seen[-1])
                    self._outcome(op, error=exc)
                    raise ActionFailed(
                        f"{action.address}: whitelist change not confirmed ({exc}); re-run apply"
                    ) from None
        except ExchangeError as exc:
            if seen:
                self._record_ips(action, seen[-1])
            self._fail(op, "update_ips", action, exc)
        crashpoints.reached("after_call")
        record = self._record_ips(action, restriction)
        self._outcome(op, result={"ips": record.ips})
        self._audit("update_ips", action, api_key=action.api_key, detail=action.reason)
        return action.reason

    async def _change_ips(self, action: Action, add, remove, seen: list):
        """The calls that take the whitelist to the plan; each answer is appended to `seen`.

        When anything is missing, the add call sends the whole planned list, not only the
        missing addresses: Binance documents the v2 call as "add/update", and whether it adds
        to the whitelist or replaces it, the list ends up holding every planned address (the
        delete call then drops the rest), so no planned address is ever briefly missing.
        """
        if action.unrestrict:
            seen.append(await self.exchange.remove_ip_restriction(action.email, action.api_key))
            return seen[-1]
        if add:
            planned = list(action.ips) or list(add)
            seen.append(
                await self.exchange.add_ip_restriction(action.email, action.api_key, planned)
            )
            crashpoints.reached("between_calls")
        if remove:
            seen.append(await self.exchange.delete_ips(action.email, action.api_key, remove))
        return seen[-1] if seen else None

    def _record_ips(self, action: Action, restriction) -> KeyRecord:
        record = self._adopted(action)
        record.ips = list(_ips_of(restriction))
        self._save()
        return record

    async def _delete_key(self, action: Action) -> str:
        action = self._with_email(action)
        warnings = await self._delete(action)
        message = f"deleted {action.api_name or ''} ({_mask(action.api_key)}): {action.reason}"
        return "; ".join([message, *warnings])

    async def _delete(self, action: Action) -> list[str]:
        """Delete the key, forget it, drop its material; returns warnings about the sinks."""
        op = self._intent("delete_key", action)
        crashpoints.reached("before_delete")
        await self._confirmed_write(
            op,
            "delete_key",
            action,
            "delete",
            write=lambda: self.exchange.delete_api_key(action.email, action.api_key),
            took_effect=lambda: self._gone(action.email, action.api_key),
        )
        crashpoints.reached("after_delete")
        warnings = self._forget(action.api_key)
        self._outcome(op, result={"deleted": _mask(action.api_key)})
        self._audit("delete_key", action, api_key=action.api_key, detail=action.reason)
        return warnings

    async def _gone(self, email: str, api_key: str) -> bool:
        page = await self.exchange.list_api_keys(email, api_key=api_key)
        return not page.rows

    async def _confirmed_write(
        self,
        op: str,
        name: str,
        action: Action,
        what: str,
        *,
        write: Callable[[], Awaitable],
        took_effect: Callable[[], Awaitable[bool]],
    ) -> None:
        """An idempotent write (permissions, delete) whose outcome the client could not tell.

        Reconciled, not blindly retried: the live account is read back, and only if the write
        did not take effect is it made once more (harmless, being idempotent). Creates never
        come here: a second create would make a second key.
        """
        for last in (False, True):
            try:
                await write()
                return
            except AmbiguousOutcome:
                if await took_effect():
                    return
                if last:
                    self._outcome(op, error=f"ambiguous outcome; {what} not confirmed")
                    raise ActionFailed(
                        f"{action.address}: {what} not confirmed; re-run apply"
                    ) from None
            except ExchangeError as exc:
                self._fail(op, name, action, exc)

    def _forget(self, api_key: str) -> list[str]:
        """Drop a deleted key from state (saved first), then its material from the sinks.
        A sink that cannot be cleaned is a warning: the key is gone either way."""
        slots = forget_key(self.state, api_key)
        self._save()
        return drop_material(self.open_sink, slots, api_key)

    # ------------------------------------------------------------------ helpers

    def _with_email(self, action: Action) -> Action:
        if action.email:
            return action
        record = self.state.subaccounts.get(action.subaccount)
        if record is None:
            raise ActionFailed(
                f"{action.address}: its sub-account {action.subaccount} was not created"
            )
        return replace(action, email=record.email)

    def _adopted(self, action: Action) -> KeyRecord:
        """The state record of the key an update touched; a key known only by its apiName is
        adopted into state here."""
        record = self.state.keys.get(action.address)
        if record is not None and record.api_key == action.api_key:
            return record
        parsed = parse_api_name(action.api_name or "")
        record = KeyRecord(
            subaccount=action.subaccount,
            email=action.email,
            label=action.label,
            api_key=action.api_key,
            api_name=action.api_name,
            generation=parsed[1] if parsed else 0,
            key_type=action.key_type or "unknown",
            created_at=self.clock(),
            permissions=sorted(p.value for p in action.previous_permissions),
            ips=[],
            sink=action.sink or "",
        )
        self.state.keys[action.address] = record
        return record

    def _record(self, action: Action, created: CreatedKey, previous: list) -> KeyRecord:
        return record_made(action, created.api_key, self.clock(), previous)

    def _material(self, action: Action, api_key: str, secret) -> KeyMaterial:
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

    def _save(self) -> None:
        self.state = self.backend.save_state(next_serial(self.state))

    def _intent(self, name: str, action: Action) -> str:
        op = uuid.uuid4().hex
        self.journal.intent(op, {"op": name, **action.to_dict()})
        return op

    def _outcome(self, op: str, *, result: dict | None = None, error: Any = None) -> None:
        self.journal.outcome(op, result=result, error=error)

    def _fail(self, op: str, name: str, action: Action, exc: ExchangeError) -> None:
        self._outcome(op, error=exc)
        self._audit(name, action, api_key=action.api_key, outcome="failed", detail=str(exc))
        raise exc

    def _audit(
        self,
        name: str,
        action: Action,
        *,
        api_key: str | None = None,
        outcome: str = "ok",
        detail: Any = None,
    ) -> None:
        self.audit.append(
            name,
            subaccount=action.subaccount,
            label=action.label or action.api_name,
            api_key=api_key,
            outcome=outcome,
            detail=detail,
        )


def _planned_ips(action: Action) -> tuple[str, ...]:
    return () if action.unrestrict else tuple(sorted(action.ips))


def _ip_delta(action: Action, restriction) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(add, remove) that take the live whitelist `restriction` to the planned one."""
    have, want = set(_ips_of(restriction)), set(_planned_ips(action))
    return tuple(sorted(want - have)), tuple(sorted(have - want))


def _ips_of(restriction) -> tuple[str, ...]:
    if restriction is None or not restriction.restricted:
        return ()
    return tuple(sorted(restriction.ips))


def _mask(api_key: str | None) -> str:
    from orchestrator.store.audit import mask_key

    return mask_key(api_key) or "-"


def op_name_of(action: Action) -> str:
    return "rotate" if action.kind == ActionKind.ROTATE else "create_key"


def _quietly(step: Callable[[], object]) -> None:
    """Best-effort clean-up on a failure path: its own failure must not hide the first one."""
    try:
        step()
    except Exception:  # noqa: BLE001 - the original error is what gets reported
        pass


def _safe(exc: BaseException) -> str:
    """An exception's class and message, for errors from sinks (which never carry secrets)."""
    return f"{type(exc).__name__}: {exc}"
