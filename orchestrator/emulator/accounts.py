"""The emulator's account model: the master key, virtual sub-accounts and their API keys.

Holds the account rules Binance enforces (30 keys per account, IPv4-only whitelists of at
most 500 characters, no withdrawals). Secrets are kept, as Binance keeps them, to verify
signatures; no endpoint ever returns one after creation.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import string
from dataclasses import asdict, dataclass, field

from orchestrator.emulator import errors
from orchestrator.exchange.models import FLAG_OF

HMAC, ED25519, RSA = "HMAC_SHA256", "ED25519", "RSA"
MAX_KEYS_PER_ACCOUNT = 30
MAX_IP_CHARS = 500
FLAGS: tuple[str, ...] = tuple(FLAG_OF.values())
#: subAccountString: letters and digits, 1..20 characters (our choice; Binance documents
#: none, and the resulting email must stay short).
SUB_ACCOUNT_STRING = re.compile(r"^[A-Za-z0-9]{1,20}$")
#: apiName: 1..64 characters of letters, digits, space, '_', '-', '.'.
API_NAME = re.compile(r"^[A-Za-z0-9 _.-]{1,64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ALNUM = string.ascii_letters + string.digits


def random_token(length: int = 64, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class ApiKey:
    """One API key. `secret` is set for HMAC keys, `public_key` (PEM) for Ed25519/RSA keys."""

    api_key: str
    key_type: str
    api_name: str = "master"
    secret: str | None = field(default=None, repr=False)
    public_key: str | None = None
    flags: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(FLAGS, False))
    status: int = 1
    ip_list: list[str] = field(default_factory=list)
    third_party_name: str | None = None
    create_time: int = 0
    update_time: int = 0
    email: str | None = None  # owner sub-account; None for the master key
    fix_api_trading: bool = False  # v2 create, Ed25519 keys only
    fix_api_reading: bool = False
    can_withdraw: bool = False  # only a person in the web UI can turn it on (a master key)

    @property
    def ip_restricted(self) -> bool:
        return self.status != 1

    def allows_ip(self, ip: str) -> bool:
        return not self.ip_restricted or ip in self.ip_list

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ApiKey:
        return cls(**data)


@dataclass
class SubAccount:
    email: str
    sub_user_id: int
    create_time: int
    is_freeze: bool = False
    keys: dict[str, ApiKey] = field(default_factory=dict)  # by apiKey, in creation order

    def listing(self) -> dict:
        return {
            "email": self.email,
            "subUserId": self.sub_user_id,
            "remark": "",
            "isFreeze": self.is_freeze,
            "createTime": self.create_time,
            "isManagedSubAccount": False,
            "isAssetManagementSubAccount": False,
        }

    def to_json(self) -> dict:
        return {
            "email": self.email,
            "sub_user_id": self.sub_user_id,
            "create_time": self.create_time,
            "is_freeze": self.is_freeze,
            "keys": [k.to_json() for k in self.keys.values()],
        }

    @classmethod
    def from_json(cls, data: dict) -> SubAccount:
        keys = [ApiKey.from_json(k) for k in data.get("keys", [])]
        return cls(**{**data, "keys": {k.api_key: k for k in keys}})


def parse_ips(raw: str, name: str = "ipAddress") -> list[str]:
    """A comma list of IPv4 addresses, in order, without duplicates. IPv6 and CIDR refused."""
    if len(raw) > MAX_IP_CHARS:
        raise errors.bad_request(f"Parameter '{name}' exceeds {MAX_IP_CHARS} characters.")
    ips: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        ips.append(_ipv4(item))
    return list(dict.fromkeys(ips))


def _ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise errors.bad_request(
            f"Invalid IP address '{text}': only IPv4 addresses are supported."
        ) from None


def check_ip_chars(ips: list[str]) -> None:
    if len(",".join(ips)) > MAX_IP_CHARS:
        raise errors.bad_request(
            f"An API key's IP whitelist may hold at most {MAX_IP_CHARS} characters."
        )


class Accounts:
    """Every sub-account of the master, with an index of all keys by apiKey."""

    def __init__(self, master: ApiKey, email_token: str | None = None) -> None:
        self.master = master
        self.email_token = email_token or random_token(8, string.ascii_lowercase + string.digits)
        self.next_sub_user_id = 1_000_001
        self.subs: dict[str, SubAccount] = {}

    # ---- queries

    def sub(self, email: str) -> SubAccount:
        try:
            return self.subs[email]
        except KeyError:
            raise errors.not_a_sub_account() from None

    def key_of(self, email: str, api_key: str) -> ApiKey:
        try:
            return self.sub(email).keys[api_key]
        except KeyError:
            raise errors.bad_request(
                f"API key '{api_key}' does not exist for sub-account '{email}'."
            ) from None

    def find_key(self, api_key: str) -> ApiKey | None:
        """The master key or a sub-account key with this apiKey, or None."""
        if api_key == self.master.api_key:
            return self.master
        for sub in self.subs.values():
            if api_key in sub.keys:
                return sub.keys[api_key]
        return None

    # ---- changes

    def create_virtual(self, sub_account_string: str, now_ms: int) -> SubAccount:
        if not SUB_ACCOUNT_STRING.fullmatch(sub_account_string):
            raise errors.illegal("subAccountString", "^[A-Za-z0-9]{1,20}$")
        email = f"{sub_account_string}_virtual@{self.email_token}noemail.com"
        if email in self.subs:
            raise errors.unsupported(f"Sub-account '{email}' already exists.")
        return self.add_existing(email, now_ms)

    def add_existing(self, email: str, now_ms: int) -> SubAccount:
        """A sub-account made outside the API (Binance's web UI), e.g. `quant@example.com`."""
        if not EMAIL.fullmatch(email):
            raise ValueError(f"not an e-mail address: {email!r}")
        if email in self.subs:
            return self.subs[email]
        sub = SubAccount(email=email, sub_user_id=self.next_sub_user_id, create_time=now_ms)
        self.next_sub_user_id += 1
        self.subs[email] = sub
        return sub

    def add_key(self, sub: SubAccount, key: ApiKey) -> None:
        if len(sub.keys) >= MAX_KEYS_PER_ACCOUNT:
            raise errors.unsupported(
                f"An account can hold at most {MAX_KEYS_PER_ACCOUNT} API keys; delete one first."
            )
        if self.find_key(key.api_key) is not None:
            raise errors.unsupported("This API key is already registered.")
        key.email = sub.email
        sub.keys[key.api_key] = key

    def delete_key(self, email: str, api_key: str) -> None:
        self.key_of(email, api_key)
        del self.subs[email].keys[api_key]

    # ---- persistence

    def to_json(self, *, include_master: bool) -> dict:
        return {
            "version": 1,
            "master": self.master.to_json() if include_master else None,
            "emailToken": self.email_token,
            "nextSubUserId": self.next_sub_user_id,
            "subAccounts": [s.to_json() for s in self.subs.values()],
        }

    @classmethod
    def from_json(cls, data: dict, master: ApiKey) -> Accounts:
        accounts = cls(master, data.get("emailToken"))
        accounts.next_sub_user_id = data.get("nextSubUserId", accounts.next_sub_user_id)
        for raw in data.get("subAccounts", []):
            sub = SubAccount.from_json(raw)
            accounts.subs[sub.email] = sub
        return accounts
