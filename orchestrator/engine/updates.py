"""Changing a live key in place: its permissions and its IP whitelist.

Both writes are idempotent, so an ambiguous outcome is read back and, if the write did not
take effect, made once more. A key the diff recognised only by its apiName is recorded in
state when it is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from orchestrator.domain.model import LiveKey
from orchestrator.engine import crashpoints, transitions
from orchestrator.engine.changeset import UpdateIps, UpdatePermissions
from orchestrator.engine.ledger import ActionFailed, Ledger
from orchestrator.exchange.errors import AmbiguousOutcome, ExchangeError
from orchestrator.exchange.interface import Exchange
from orchestrator.exchange.models import IpRestriction

KeyUpdate = UpdatePermissions | UpdateIps


class Updater:
    def __init__(self, exchange: Exchange, ledger: Ledger, clock: Callable[[], datetime]) -> None:
        self.exchange = exchange
        self.ledger = ledger
        self.clock = clock

    async def update_permissions(self, action: UpdatePermissions) -> str:
        op = await self.ledger.intent("update_permissions", action)
        crashpoints.reached("before_call")
        await self.ledger.confirmed_write(
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
        permissions = sorted(p.value for p in action.permissions)
        state = transitions.permissions_set(self._adopted(action), action.address, permissions)
        await self.ledger.commit(state)
        await self.ledger.outcome(op, result={"permissions": permissions})
        await self.ledger.audit(
            "update_permissions", action, api_key=action.api_key, detail=action.reason
        )
        return action.reason

    async def _permissions_set(self, action: UpdatePermissions) -> bool:
        rows = await self.exchange.list_api_keys(action.email, api_key=action.api_key)
        return bool(rows.rows) and rows.rows[0].permissions == action.permissions

    async def update_ips(self, action: UpdateIps) -> str:
        """At most one add call and one delete call; add first so the list is never empty.
        An ambiguous outcome is read back and, the calls being idempotent, the remaining
        difference applied once more. If a call fails, state records what the calls before it
        did."""
        op = await self.ledger.intent("update_ips", action)
        crashpoints.reached("before_call")
        seen: list[IpRestriction | None] = []
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
                    await self._record_ips(action, seen[-1])
                    await self.ledger.outcome(op, error=exc)
                    raise ActionFailed(
                        f"{action.address}: whitelist change not confirmed ({exc}); re-run apply"
                    ) from None
        except ExchangeError as exc:
            if seen:
                await self._record_ips(action, seen[-1])
            await self.ledger.fail(op, "update_ips", action, exc)
        crashpoints.reached("after_call")
        ips = await self._record_ips(action, restriction)
        await self.ledger.outcome(op, result={"ips": ips})
        await self.ledger.audit("update_ips", action, api_key=action.api_key, detail=action.reason)
        return action.reason

    async def _change_ips(
        self,
        action: UpdateIps,
        add: Sequence[str],
        remove: Sequence[str],
        seen: list[IpRestriction | None],
    ) -> IpRestriction | None:
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

    async def _record_ips(self, action: UpdateIps, restriction: IpRestriction | None) -> list[str]:
        ips = list(_ips_of(restriction))
        await self.ledger.commit(transitions.ips_set(self._adopted(action), action.address, ips))
        return ips

    def _adopted(self, action: KeyUpdate):
        """The state with the touched key recorded (adopted when known only by apiName)."""
        live = LiveKey(
            email=action.email,
            api_name=action.api_name,
            api_key=action.api_key,
            permissions=(
                action.previous_permissions
                if isinstance(action, UpdatePermissions)
                else action.permissions
            ),
            restricted=False,
            ips=(),
        )
        return transitions.key_adopted(
            self.ledger.state,
            address=action.address,
            label=action.label,
            key_type=action.key_type,
            sink=action.sink,
            live=live,
            created_at=self.clock(),
        )


def _planned_ips(action: UpdateIps) -> tuple[str, ...]:
    return () if action.unrestrict else tuple(sorted(action.ips))


def _ip_delta(
    action: UpdateIps, restriction: IpRestriction | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(add, remove) that take the live whitelist `restriction` to the planned one."""
    have, want = set(_ips_of(restriction)), set(_planned_ips(action))
    return tuple(sorted(want - have)), tuple(sorted(have - want))


def _ips_of(restriction: IpRestriction | None) -> tuple[str, ...]:
    if restriction is None or not restriction.restricted:
        return ()
    return tuple(sorted(restriction.ips))
