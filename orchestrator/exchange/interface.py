"""The `Exchange` interface: everything the engine may ask of Binance.

The engine never builds a URL. The real client implements this; the sandbox is the same
client over an in-process transport to the emulator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from orchestrator.exchange.models import (
    ApiKeyPage,
    ApiRestrictions,
    CreatedKey,
    IpRestriction,
    Permissions,
    SubAccount,
)


@runtime_checkable
class Signer(Protocol):
    """Signs request payloads for one API key."""

    @property
    def api_key(self) -> str: ...

    @property
    def key_type(self) -> str:
        """'hmac', 'ed25519' or 'rsa'."""
        ...

    def sign(self, payload: bytes) -> str:
        """The signature of `payload` as Binance expects it (hex for HMAC, base64 otherwise),
        before URL-encoding."""
        ...


class Exchange(Protocol):
    """The master account's view of its sub-accounts and their API keys."""

    @property
    def master_api_key(self) -> str:
        """The master key's id (public, but shown masked)."""
        ...

    async def server_time(self) -> int: ...

    async def create_virtual_subaccount(self, sub_account_string: str) -> str:
        """Create a virtual sub-account; returns its email."""
        ...

    async def list_subaccounts(
        self, *, email: str | None = None, page: int = 1, limit: int = 200
    ) -> list[SubAccount]: ...

    async def list_all_subaccounts(self) -> list[SubAccount]:
        """Every page of list_subaccounts."""
        ...

    async def list_api_keys(
        self, email: str, *, api_key: str | None = None, page: int = 1, size: int = 100
    ) -> ApiKeyPage: ...

    async def list_all_api_keys(self, email: str) -> list:
        """Every key of a sub-account (all pages), as ApiKey rows."""
        ...

    async def create_api_key(
        self,
        email: str,
        api_name: str,
        permissions: Permissions,
        ips: Sequence[str],
        *,
        public_key_pem: str | None = None,
    ) -> CreatedKey:
        """Create a key; status 2 with `ips` when given, else status 1 (unrestricted).
        With `public_key_pem` (Ed25519/RSA) no secret is returned."""
        ...

    async def create_api_key_v2(
        self,
        email: str,
        api_name: str,
        permissions: Permissions,
        ips: Sequence[str],
        *,
        public_key_pem: str | None = None,
        fix_api_trading: bool = False,
        fix_api_reading: bool = False,
    ) -> CreatedKey:
        """POST /sapi/v2/sub-account/subAccountApi: as create_api_key, plus FIX API access
        (Ed25519 keys only), with `publicKey` (RSA or Ed25519) in the request body."""
        ...

    async def delete_api_key(self, email: str, api_key: str) -> None: ...

    async def set_permissions(self, email: str, api_key: str, permissions: Permissions) -> None: ...

    async def add_ip_restriction(
        self, email: str, api_key: str, ips: Sequence[str]
    ) -> IpRestriction:
        """Restrict the key to trusted IPs (status 2), adding `ips` to its whitelist."""
        ...

    async def remove_ip_restriction(self, email: str, api_key: str) -> IpRestriction:
        """Make the key unrestricted (status 1)."""
        ...

    async def get_ip_restriction(self, email: str, api_key: str) -> IpRestriction: ...

    async def delete_ips(self, email: str, api_key: str, ips: Sequence[str]) -> IpRestriction: ...

    async def api_restrictions(self, signer: Signer) -> ApiRestrictions:
        """GET /sapi/v1/account/apiRestrictions signed with `signer` (e.g. a sub-account key)."""
        ...

    async def master_restrictions(self) -> ApiRestrictions:
        """apiRestrictions of the master key itself: its permissions and whether it has an IP
        whitelist."""
        ...

    def call_counts(self) -> Mapping[str, int]:
        """Calls made so far, by endpoint name (see endpoints.py)."""
        ...

    async def aclose(self) -> None: ...
