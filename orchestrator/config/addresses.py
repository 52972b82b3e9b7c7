"""Which whitelist entries Binance can ever match: plain, public IPv4 addresses.

The documentation ranges (TEST-NET-1/2/3: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) are
accepted on purpose: examples, tests and the sandbox use them, and they do no harm.
"""

from __future__ import annotations

import ipaddress

_REFUSED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "an unspecified ('this network') address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("127.0.0.0/8", "a loopback address"),
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT (shared, private) address"),
    ("169.254.0.0/16", "a link-local address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("192.0.0.0/24", "a reserved (IETF protocol) address"),
    ("198.18.0.0/15", "a reserved (benchmarking) address"),
)
_NETWORKS = tuple((ipaddress.IPv4Network(net), why) for net, why in _REFUSED)
PUBLIC_HINT = (
    "use the public IPv4 address your bot's traffic comes from "
    "(e.g. what `curl -4 ifconfig.me` prints on that host)"
)


def whitelist_problem(entry: str) -> tuple[str, str] | None:
    """(what is wrong, how to fix) for an entry Binance could never match, else None."""
    text = entry
    if "/" in text:
        return (
            f"{entry!r} is a CIDR range; Binance whitelists single IPv4 addresses only",
            "list each address on its own",
        )
    if ":" in text:
        return (
            f"{entry!r} is an IPv6 address; Binance whitelists IPv4 addresses only",
            "use the IPv4 address of the host, or give it an IPv4 egress",
        )
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return (
            f"{entry!r} is not an IPv4 address (host names are not resolved)",
            "write the address as four numbers, e.g. 203.0.113.10",
        )
    for network, why in _NETWORKS:
        if address in network:
            return (
                f"{entry!r} is {why}; Binance sees callers by their public address, "
                "so it can never match",
                PUBLIC_HINT,
            )
    return None
