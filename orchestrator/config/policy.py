"""Rules across values: duplicates, inherited settings, whitelists of trading keys, key counts.

These run on the plain data read from YAML, not on the validated models, so that they still
report everything they can when some other part of the file has schema errors. Values of the
wrong type are skipped here: the schema check reports them.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import urlsplit

from orchestrator.config.models import LOOPBACK_HOSTS
from orchestrator.config.problems import Severity
from orchestrator.config.profiles import (
    PERMISSION_NAMES,
    PROFILES,
    TRADING,
    describe,
    permissions_of,
)
from orchestrator.config.source import join_path
from orchestrator.domain.permissions import Permission

MAX_KEYS_PER_ACCOUNT = 30
MAX_IP_CHARS = 500


class Finding(NamedTuple):
    severity: Severity
    path: str
    message: str
    hint: str
    on_key: bool = False  # point at the field name rather than its value


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _given(mapping: dict, field: str) -> bool:
    """A field counts as written when it is present and not null (null means: inherit)."""
    return mapping.get(field) is not None


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, str)]


class PolicyCheck:
    """Checks one plan's plain data; `run()` returns every finding."""

    def __init__(self, data: dict) -> None:
        self.data = data
        self.defaults = _as_dict(data.get("defaults"))
        self.findings: list[Finding] = []

    def run(self) -> list[Finding]:
        self._exchange()
        self._settings(self.defaults, "defaults")
        subaccounts = _as_list(self.data.get("subaccounts"))
        self._accounts(subaccounts)
        self._unique_subaccounts(subaccounts)
        self._labels_across(subaccounts)
        for index, sub in enumerate(subaccounts):
            if isinstance(sub, dict):
                self._subaccount(sub, join_path("subaccounts", index))
        return self.findings

    def error(self, path: str, message: str, hint: str, on_key: bool = False) -> None:
        self.findings.append(Finding("error", path, message, hint, on_key))

    def warn(self, path: str, message: str, hint: str, on_key: bool = False) -> None:
        self.findings.append(Finding("warning", path, message, hint, on_key))

    # ---- exchange

    def _exchange(self) -> None:
        exchange = _as_dict(self.data.get("exchange"))
        kind = exchange.get("kind", "sandbox")
        if kind == "sandbox" and "endpoint" in exchange:
            self.error(
                "exchange.endpoint",
                "`endpoint` applies only to `kind: binance`",
                "remove it for the built-in sandbox, or set `kind: binance` to use "
                "`emulator serve` or the real service",
                on_key=True,
            )
        endpoint = exchange.get("endpoint")
        window = exchange.get("rate_window_s")
        if (
            kind == "binance"
            and isinstance(window, int | float)
            and window < 60
            and not _is_loopback(endpoint)
        ):
            self.warn(
                "exchange.rate_window_s",
                f"rate_window_s {window} is shorter than Binance's one-minute window",
                "use it only with a time-scaled `emulator serve` on 127.0.0.1",
            )

    # ---- master accounts

    def _accounts(self, subaccounts: list) -> None:
        """Account names are unique, each account names its own credential variables, and
        every sub-account's `account:` names one of them."""
        accounts = self.data.get("accounts")
        names = self._account_names(_as_list(accounts))
        if isinstance(accounts, list) and not accounts:
            self.error(
                "accounts",
                "`accounts:` is empty",
                "list at least one account, or remove `accounts:` to use BINANCE_API_KEY",
                on_key=True,
            )
        for index, sub in enumerate(subaccounts):
            account = _as_dict(sub).get("account")
            if not isinstance(account, str):
                continue
            where = join_path(join_path("subaccounts", index), "account")
            if accounts is None:
                self.error(
                    where,
                    f"sub-account names account {account!r} but the plan has no `accounts:`",
                    "add a top-level `accounts:` list naming it, or remove `account:`",
                )
            elif names and account not in names:
                self.error(
                    where,
                    f"unknown account {account!r}",
                    f"use one of the plan's accounts: {', '.join(names)}",
                )

    def _account_names(self, accounts: list) -> list[str]:
        names: dict[str, int] = {}
        variables: dict[str, str] = {}
        binance = _as_dict(self.data.get("exchange")).get("kind") == "binance"
        for index, account in enumerate(accounts):
            entry = _as_dict(account)
            path = join_path("accounts", index)
            name = entry.get("name")
            if isinstance(name, str):
                if name in names:
                    self.error(
                        join_path(path, "name"),
                        f"duplicate account name {name!r} (also accounts[{names[name]}])",
                        "give every account its own name",
                    )
                names.setdefault(name, index)
            self._account_variables(entry, path, binance, variables)
        return list(names)

    def _account_variables(
        self, entry: dict, path: str, binance: bool, seen: dict[str, str]
    ) -> None:
        for field in ("api_key_env", "secret_env", "private_key_file_env", "passphrase_env"):
            variable = entry.get(field)
            if not isinstance(variable, str):
                continue
            if variable in seen:
                self.error(
                    join_path(path, field),
                    f"{variable} is already named by {seen[variable]}",
                    "each account reads its own variables; two accounts with one key would be "
                    "one master account managed twice",
                )
            seen.setdefault(variable, f"{path}.{field}")
        if _given(entry, "secret_env") and _given(entry, "private_key_file_env"):
            self.error(
                join_path(path, "private_key_file_env"),
                "an account has either `secret_env` (an HMAC key) or `private_key_file_env` "
                "(an Ed25519/RSA key file), not both",
                "remove one of them",
                on_key=True,
            )
        if not binance:
            return  # the sandbox makes each account's master key itself
        if not _given(entry, "api_key_env"):
            self.error(
                path,
                "account has no `api_key_env` (the variable holding its master API key)",
                "add e.g. `api_key_env: FUND2_API_KEY`",
            )
        if not _given(entry, "secret_env") and not _given(entry, "private_key_file_env"):
            self.error(
                path,
                "account names neither `secret_env` nor `private_key_file_env`",
                "add `secret_env: FUND2_API_SECRET` (HMAC key) or `private_key_file_env: "
                "FUND2_PRIVATE_KEY_FILE` (path to an Ed25519/RSA private key PEM)",
            )

    # ---- sub-accounts

    def _unique_subaccounts(self, subaccounts: list) -> None:
        """Names are unique across the plan (they address keys and sink slots), emails too
        (Binance's are unique across all accounts), virtual names within an account."""
        for field in ("name", "email", "virtual"):
            seen: dict[tuple, int] = {}
            for index, sub in enumerate(subaccounts):
                value = _as_dict(sub).get(field)
                if not isinstance(value, str):
                    continue
                folded = value.lower() if field == "email" else value
                scope = self._account_of(sub) if field == "virtual" else None
                if (scope, folded) in seen:
                    self.error(
                        f"subaccounts[{index}].{field}",
                        self._already_used(field, value, subaccounts, seen[(scope, folded)], sub),
                        f"give each sub-account its own {field}, or merge their keys",
                    )
                else:
                    seen[(scope, folded)] = index

    def _already_used(self, field: str, value: str, subs: list, first: int, sub: object) -> str:
        message = f"sub-account {field} {value!r} is already used by subaccounts[{first}]"
        mine, theirs = self._account_of(sub), self._account_of(subs[first])
        if field == "email" and mine != theirs:
            message += (
                f" of account {theirs!r}: a sub-account belongs to one master account, "
                f"not also to {mine!r}"
            )
        return message

    def _account_of(self, sub: object) -> object:
        """The account a sub-account belongs to: its `account:`, else the first one's name."""
        account = _as_dict(sub).get("account")
        if account is not None:
            return account
        first = _as_list(self.data.get("accounts"))[:1]
        return _as_dict(first[0]).get("name") if first else None

    def _labels_across(self, subaccounts: list) -> None:
        """A label in two sub-accounts is legal but makes `--label` and `state show` ambiguous."""
        owner: dict[str, object] = {}  # label -> the name of the sub-account first using it
        for i, sub in enumerate(subaccounts):
            name = _as_dict(sub).get("name")
            for j, key in enumerate(_as_list(_as_dict(sub).get("keys"))):
                label = _as_dict(key).get("label")
                if not isinstance(label, str):
                    continue
                if label in owner and owner[label] != name:
                    self.warn(
                        f"subaccounts[{i}].keys[{j}].label",
                        f"label {label!r} is also used in sub-account {owner[label]!r}",
                        "use labels unique across the plan so `--label` names one key",
                    )
                owner.setdefault(label, name)

    def _subaccount(self, sub: dict, path: str) -> None:
        has_email, has_virtual = "email" in sub, "virtual" in sub
        if has_email and has_virtual:
            self.error(
                join_path(path, "virtual"),
                "a sub-account has either `email` (an existing one) or `virtual` "
                "(one to create), not both",
                "remove one of them",
                on_key=True,
            )
        elif not has_email and not has_virtual:
            self.error(
                path,
                "sub-account has neither `email` nor `virtual`",
                "add `email: ...` for an existing sub-account or `virtual: NAME` to create one",
            )
        keys = sub.get("keys")
        if sub.get("prune") is True and not keys:
            self.warn(
                join_path(path, "prune"),
                "`prune: true` with no keys deletes every key of this sub-account",
                "list the keys to keep, or remove `prune`",
            )
        keys = _as_list(keys)
        self._unique_labels(keys, path)
        self._key_count(keys, path)
        for index, key in enumerate(keys):
            if isinstance(key, dict):
                key_path = join_path(join_path(path, "keys"), index)
                self._settings(key, key_path)
                self._whitelist(key, key_path)
                self._verify_reach(key, key_path)

    def _verify_reach(self, key: dict, path: str) -> None:
        """`verify: true` calls apiRestrictions signed with the new key from this machine, so
        a whitelisted key verifies only if this machine's address is on its whitelist."""
        verify = key.get("verify", self.defaults.get("verify"))
        ips = key.get("ips", self.defaults.get("ips"))
        if verify is True and isinstance(ips, list) and ips:
            self.warn(
                join_path(path, "verify" if "verify" in key else "ips"),
                "`verify: true` on a whitelisted key: the check is signed with the new "
                "key from the machine running rotate, so it fails (and the rotation "
                "is rolled back) unless that machine's public IP is in `ips`",
                "add the orchestrator host's address to `ips`, or drop `verify`",
            )

    def _unique_labels(self, keys: list, path: str) -> None:
        seen: dict[str, int] = {}
        for index, key in enumerate(keys):
            label = _as_dict(key).get("label")
            if not isinstance(label, str):
                continue
            if label in seen:
                self.error(
                    f"{path}.keys[{index}].label",
                    f"duplicate label {label!r} (also keys[{seen[label]}])",
                    "give every key of a sub-account its own label",
                )
            else:
                seen[label] = index

    def _key_count(self, keys: list, path: str) -> None:
        """Rotation creates the next key before deleting the old one, so it needs a free slot."""
        rotating = any(self._rotates(_as_dict(key)) for key in keys)
        needed = len(keys) + (1 if rotating else 0)
        if needed > MAX_KEYS_PER_ACCOUNT:
            extra = " plus 1 spare slot for rotation" if rotating else ""
            self.error(
                join_path(path, "keys"),
                f"{len(keys)} keys{extra} exceed Binance's limit of "
                f"{MAX_KEYS_PER_ACCOUNT} keys per account",
                "move keys to another sub-account"
                + (
                    f" (at most {MAX_KEYS_PER_ACCOUNT - 1} keys when any rotates)"
                    if rotating
                    else ""
                ),
                on_key=True,
            )

    def _rotates(self, key: dict) -> bool:
        """An explicit `rotate_after: null` on a key turns off the default's rotation."""
        source = key if "rotate_after" in key else self.defaults
        return source.get("rotate_after") not in (None, 0, "0s")

    # ---- settings shared by defaults and keys

    def _settings(self, settings: dict, path: str) -> None:
        if _given(settings, "profile") and _given(settings, "permissions"):
            self.error(
                join_path(path, "permissions"),
                "`profile` and `permissions` together: which one applies is unclear",
                "keep `profile` for a named set or `permissions` for an explicit list",
                on_key=True,
            )
        perms_path = join_path(path, "permissions")
        for index, name in enumerate(_as_list(settings.get("permissions"))):
            if name == Permission.UNIVERSAL_TRANSFER.value:
                self.warn(
                    join_path(perms_path, index),
                    "`universal_transfer` lets this key move funds between accounts",
                    "remove it unless the bot really transfers (least privilege)",
                )
        ips = _strings(settings.get("ips"))
        if ips is not None:
            self._ip_list(ips, join_path(path, "ips"))

    def _ip_list(self, ips: list[str], path: str) -> None:
        first: dict[str, int] = {}
        for index, ip in enumerate(ips):
            if ip in first:
                self.error(
                    join_path(path, index),
                    f"{ip!r} is listed twice (also [{first[ip]}])",
                    "remove the duplicate",
                )
            first.setdefault(ip, index)
        length = len(",".join(ips))
        if length > MAX_IP_CHARS:
            self.error(
                path,
                f"the IP list is {length} characters joined by commas; Binance "
                f"takes at most {MAX_IP_CHARS}",
                "whitelist fewer addresses (about 30 fit), e.g. route bots through "
                "fewer egress IPs",
                on_key=True,
            )

    # ---- whitelist of trading keys

    def _whitelist(self, key: dict, path: str) -> None:
        unrestricted = key.get("ip_restriction") == "none"
        reason = key.get("reason")
        if unrestricted and _strings(key.get("ips")):
            self.error(
                join_path(path, "ips"),
                "`ip_restriction: none` and a list of IPs contradict each other",
                "remove `ips` (or `ip_restriction`)",
                on_key=True,
            )
            return
        if "reason" in key and not unrestricted:
            self.warn(
                join_path(path, "reason"),
                "`reason` is only read with `ip_restriction: none`",
                "remove it, or add `ip_restriction: none`",
                on_key=True,
            )
        perms = self._effective_permissions(key)
        if perms is None or not perms & TRADING:
            return
        ips = self._effective_ips(key)
        if ips is None or (ips and not unrestricted):
            return
        label = key.get("label", "?")
        what = f"key {label!r} can trade ({describe(perms)})"
        if not unrestricted:
            where = join_path(path, "ips") if _given(key, "ips") else path
            self.error(
                where,
                f"{what} but has no IP whitelist",
                "add `ips: [YOUR.PUBLIC.IP]`, or if it really cannot have one, "
                "`ip_restriction: none` with a `reason:`",
            )
        elif not (isinstance(reason, str) and reason.strip()):
            self.error(
                join_path(path, "ip_restriction"),
                f"{what} and `ip_restriction: none` needs a `reason:`",
                "add `reason: <why this key cannot have an IP whitelist>`",
                on_key=True,
            )
        else:
            self.warn(
                join_path(path, "ip_restriction"),
                f"{what} without an IP whitelist ({reason.strip()})",
                "a whitelist is the best protection if the key leaks; add `ips:` when you can",
                on_key=True,
            )

    def _effective_permissions(self, key: dict) -> frozenset[Permission] | None:
        """The key's permissions after inheritance; None when they cannot be known."""
        for source in (key, self.defaults):
            if _given(source, "permissions"):
                names = _strings(source["permissions"])
                if names is None:
                    return None
                return permissions_of([n for n in names if n in PERMISSION_NAMES])
            if _given(source, "profile"):
                profile = source["profile"]
                return PROFILES.get(profile) if isinstance(profile, str) else None
        return frozenset()

    def _effective_ips(self, key: dict) -> list[str] | None:
        for source in (key, self.defaults):
            if _given(source, "ips"):
                return _strings(source["ips"])
        return []


def _is_loopback(endpoint: Any) -> bool:
    if not isinstance(endpoint, str):
        return False
    return urlsplit(endpoint).hostname in LOOPBACK_HOSTS
