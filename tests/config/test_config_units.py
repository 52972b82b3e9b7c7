"""Durations, profiles, addresses and YAML positions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config.addresses import whitelist_problem
from orchestrator.config.durations import DurationError, format_duration, parse_duration
from orchestrator.config.profiles import PROFILES, describe, permissions_of
from orchestrator.config.source import YamlSyntaxError, read_yaml
from orchestrator.exchange.models import Permission


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("15m", timedelta(minutes=15)),
        ("45s", timedelta(seconds=45)),
        ("0s", timedelta(0)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2h30m15s", timedelta(hours=2, minutes=30, seconds=15)),
        (0, timedelta(0)),
    ],
)
def test_durations_parse(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30x", "-1d", "d", "", "1.5h", "30", "12h1d", 30, True, None])
def test_bad_durations_are_refused(text):
    with pytest.raises(DurationError):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**8))
def test_durations_round_trip(seconds):
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


def test_profiles_grant_what_the_spec_says():
    assert PROFILES["read-only"] == frozenset()
    assert PROFILES["quant"] == {Permission.SPOT, Permission.FUTURES}
    assert PROFILES["copy-trade"] == {Permission.SPOT}
    assert permissions_of(["read", "spot"]) == {Permission.SPOT}
    assert describe(PROFILES["quant"]) == "read, spot, futures"


@pytest.mark.parametrize("ip", ["203.0.113.10", "198.51.100.7", "192.0.2.1", "8.8.8.8", "1.1.1.1"])
def test_public_and_documentation_addresses_are_accepted(ip):
    assert whitelist_problem(ip) is None


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("10.0.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "carrier-grade"),
        ("127.0.0.1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("::1", "IPv6"),
        ("2001:db8::1", "IPv6"),
        ("203.0.113.0/24", "CIDR"),
        ("example.com", "not an IPv4"),
        ("1.2.3", "not an IPv4"),
        ("01.2.3.4", "not an IPv4"),
        (" 1.2.3.4", "not an IPv4"),
    ],
)
def test_unusable_addresses_are_refused(ip, why):
    problem = whitelist_problem(ip)
    assert problem is not None and why in problem[0]


def test_positions_are_kept_for_every_value():
    source = read_yaml(
        "version: 1\nsubaccounts:\n  - name: a\n    keys:\n"
        "      - label: x\n        ips: [203.0.113.10, 198.51.100.7]\n"
    )
    assert source.values["version"] == (1, 10)
    assert source.keys["subaccounts"] == (2, 1)
    assert source.values["subaccounts[0].keys[0].label"] == (5, 16)
    assert source.values["subaccounts[0].keys[0].ips[1]"] == (6, 29)
    assert source.locate("subaccounts[0].keys[0].missing") == (5, 9)
    assert source.data["subaccounts"][0]["keys"][0]["ips"] == ["203.0.113.10", "198.51.100.7"]


def test_duplicate_keys_are_all_reported():
    source = read_yaml("a: 1\nb: 2\na: 3\nb: 4\n")
    assert [(p.path, p.position) for p in source.problems] == [("a", (3, 1)), ("b", (4, 1))]


def test_broken_yaml_names_its_line():
    with pytest.raises(YamlSyntaxError) as caught:
        read_yaml("a:\n  b: [1, 2\nc: 3\n")
    assert caught.value.problem.position[0] == 3


def test_recursive_alias_is_refused():
    with pytest.raises(YamlSyntaxError, match="alias"):
        read_yaml("a: &x [*x]\n")


def test_alias_bomb_is_refused():
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    with pytest.raises(YamlSyntaxError, match="expands"):
        read_yaml("\n".join(levels) + "\n")


def test_control_characters_are_reported_with_position():
    with pytest.raises(YamlSyntaxError) as caught:
        read_yaml("a: 1\nb: \x00\n")
    assert caught.value.problem.position == (2, 4)
