"""load_plan: the Desired it builds, inheritance, policy, and reporting every problem at once."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.config import PlanError, Problem, find_plan, load_plan, plan_json_schema
from orchestrator.domain.model import Desired
from orchestrator.exchange.models import Permission

SPEC_EXAMPLE = """\
version: 1
exchange:
  kind: sandbox                      # sandbox (default) | binance
defaults:
  key_type: ed25519
  rotate_after: 30d
  grace: 1h
  secrets: file:secrets/
  ips: [203.0.113.10]
subaccounts:
  - name: quant
    email: quant@example.com
    keys:
      - label: QuantBot-BTC
        profile: quant
      - label: Koinly-Tax
        profile: read-only
        ips: []
  - name: copy
    virtual: copytrade
    keys:
      - label: CopyTrade-Bitget
        permissions: [read, spot]
        ips: [198.51.100.7]
        secrets: dotenv:bots/copytrade.env
"""


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    with pytest.raises(PlanError) as caught:
        load_plan(write(tmp_path, text))
    return caught.value.problems


def test_spec_example_builds_the_desired_state(tmp_path):
    path = write(tmp_path, SPEC_EXAMPLE, "prod.yaml")
    loaded = load_plan(path)
    assert isinstance(loaded.desired, Desired)
    assert loaded.name == loaded.desired.plan_name == "prod"
    assert loaded.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.exchange.kind == "sandbox" and loaded.exchange.endpoint is None
    assert loaded.warnings == ()
    quant, copy = loaded.desired.subaccounts
    assert (quant.email, quant.virtual, copy.email, copy.virtual) == (
        "quant@example.com",
        None,
        None,
        "copytrade",
    )
    bot, koinly = quant.keys
    assert bot.address == "quant/QuantBot-BTC"
    assert bot.permissions == frozenset({Permission.SPOT, Permission.FUTURES})
    assert bot.ips == ("203.0.113.10",)
    assert bot.rotate_after == timedelta(days=30) and bot.grace == timedelta(hours=1)
    assert bot.sink == "file:secrets/" and bot.key_type == "ed25519"
    assert koinly.permissions == frozenset() and koinly.ips == ()
    (copytrade,) = copy.keys
    assert copytrade.permissions == frozenset({Permission.SPOT})
    assert copytrade.sink == "dotenv:bots/copytrade.env"


def test_key_settings_override_defaults_and_fall_back_to_builtins(tmp_path):
    loaded = load_plan(
        write(
            tmp_path,
            """\
version: 1
defaults:
  profile: copy-trade
  ips: [198.51.100.9, 198.51.100.7]
  verify: true
subaccounts:
  - name: a
    virtual: a1
    keys:
      - label: inherits
      - label: overrides
        permissions: [futures]
        ips: [203.0.113.10]
        key_type: hmac
        grace: 0
        verify: false
        rotate_after: 7d
""",
        )
    )
    inherits, overrides = loaded.desired.keys()
    assert inherits.permissions == {Permission.SPOT}
    assert inherits.ips == ("198.51.100.7", "198.51.100.9")
    assert inherits.verify is True and inherits.rotate_after is None
    assert inherits.grace == timedelta(hours=1) and inherits.sink == "file:secrets/"
    assert overrides.permissions == {Permission.FUTURES} and overrides.key_type == "hmac"
    assert overrides.ips == ("203.0.113.10",) and overrides.grace == timedelta(0)
    assert overrides.verify is False and overrides.rotate_after == timedelta(days=7)


def test_key_can_turn_off_the_default_rotation(tmp_path):
    loaded = load_plan(
        write(
            tmp_path,
            "version: 1\ndefaults: {rotate_after: 30d}\n"
            "subaccounts:\n  - name: a\n    virtual: a1\n    keys:\n"
            "      - {label: k, rotate_after: null}\n",
        )
    )
    assert loaded.desired.keys()[0].rotate_after is None


def test_key_without_profile_is_read_only(tmp_path):
    loaded = load_plan(
        write(
            tmp_path,
            "version: 1\nsubaccounts:\n  - name: a\n"
            "    email: a@example.com\n    keys: [{label: k}]\n",
        )
    )
    assert loaded.desired.keys()[0].permissions == frozenset()


def test_binance_exchange_defaults_to_the_public_endpoint(tmp_path):
    loaded = load_plan(
        write(tmp_path, "version: 1\nexchange: {kind: binance, recv_window_ms: 10000}\n")
    )
    assert loaded.exchange.endpoint == "https://api.binance.com"
    assert loaded.exchange.recv_window_ms == 10000


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8765", "http://localhost:8765/"])
def test_loopback_http_endpoint_is_allowed_for_emulator_serve(tmp_path, endpoint):
    loaded = load_plan(
        write(
            tmp_path,
            f"version: 1\nexchange: {{kind: binance, endpoint: "
            f"'{endpoint}', rate_window_s: 0.5}}\n",
        )
    )
    assert loaded.exchange.endpoint == endpoint.rstrip("/")
    assert loaded.exchange.rate_window_s == 0.5


def test_ip_restriction_none_with_reason_is_a_warning(tmp_path):
    loaded = load_plan(
        write(
            tmp_path,
            """\
version: 1
subaccounts:
  - name: a
    virtual: a1
    keys:
      - label: serverless
        profile: copy-trade
        ip_restriction: none
        reason: runs on a serverless platform without a fixed egress IP
""",
        )
    )
    (warning,) = loaded.warnings
    assert warning.severity == "warning" and warning.line == 8
    assert "without an IP whitelist" in warning.message
    assert loaded.desired.keys()[0].ips == ()


def test_universal_transfer_warns(tmp_path):
    loaded = load_plan(
        write(
            tmp_path,
            "version: 1\nsubaccounts:\n  - name: a\n    virtual: a1\n"
            "    keys:\n      - label: k\n        ips: [203.0.113.10]\n"
            "        permissions: [universal_transfer]\n",
        )
    )
    (warning,) = loaded.warnings
    assert warning.path == "subaccounts[0].keys[0].permissions[0]"
    assert "least privilege" in warning.hint


def test_every_problem_is_reported_at_once(tmp_path):
    problems = problems_of(
        tmp_path,
        """\
version: 1
defaults:
  rotate_after: 30x
subaccounts:
  - name: a
    email: a@example.com
    keys:
      - label: bad label
        permisions: [spot]
      - label: t
        profile: quant
        ips: [10.0.0.1]
      - label: t
        profile: quant
""",
    )
    messages = {(p.line, p.path): p.message for p in problems}
    assert set(messages) >= {
        (3, "defaults.rotate_after"),
        (8, "subaccounts[0].keys[0].label"),
        (9, "subaccounts[0].keys[0].permisions"),
        (12, "subaccounts[0].keys[1].ips[0]"),
        (13, "subaccounts[0].keys[2].label"),
        (13, "subaccounts[0].keys[2]"),
    }
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_problem_format_names_file_line_column_path_and_fix():
    problem = Problem(
        "plans/x.yaml",
        12,
        9,
        "subaccounts[0].keys[1].ips[0]",
        "'10.0.0.1' is a private address",
        "use a public one",
    )
    assert problem.format() == (
        "plans/x.yaml:12:9: subaccounts[0].keys[1].ips[0]: "
        "'10.0.0.1' is a private address Fix: use a public one"
    )
    warning = Problem("p.yaml", 3, 1, "a", "m", "h", "warning")
    assert warning.format() == "p.yaml:3:1: a: warning: m Fix: h"


def test_secrets_never_appear_in_problems(tmp_path):
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    problems = problems_of(
        tmp_path,
        f"version: 1\nsubaccounts:\n  - name: a\n    virtual: a1\n"
        f"    keys:\n      - label: {secret}\n        ips: ['{secret}']\n"
        f"        password: hunter2hunter2\n",
    )
    text = "\n".join(p.format() for p in problems)
    assert secret not in text and "hunter2hunter2" not in text
    assert {p.path for p in problems} >= {
        "subaccounts[0].keys[0].label",
        "subaccounts[0].keys[0].ips[0]",
        "subaccounts[0].keys[0].password",
    }


@pytest.mark.parametrize(
    ("count", "rotate", "ok"),
    [
        (30, False, True),
        (31, False, False),
        (29, True, True),
        (30, True, False),
    ],
)
def test_key_count_includes_rotation_headroom(tmp_path, count, rotate, ok):
    keys = "".join(f"      - {{label: k{i}, ips: []}}\n" for i in range(count))
    rotation = "defaults: {rotate_after: 30d}\n" if rotate else ""
    text = f"version: 1\n{rotation}subaccounts:\n  - name: a\n    virtual: a1\n    keys:\n{keys}"
    if ok:
        assert load_plan(write(tmp_path, text)).key_count == count
    else:
        assert any("limit of 30 keys" in p.message for p in problems_of(tmp_path, text))


def test_ip_list_length_is_counted_joined_by_commas(tmp_path):
    def plan(n: int) -> str:
        ips = ", ".join(f"203.0.113.{100 + i}" for i in range(n))
        return (
            f"version: 1\nsubaccounts:\n  - name: a\n    virtual: a1\n    keys:\n"
            f"      - {{label: k, profile: quant, ips: [{ips}]}}\n"
        )

    assert len(",".join(f"203.0.113.{100 + i}" for i in range(35))) == 489
    load_plan(write(tmp_path, plan(35)))
    assert any("503 characters" in p.message for p in problems_of(tmp_path, plan(36)))


def test_unreadable_files_are_plan_errors(tmp_path):
    with pytest.raises(PlanError, match="file not found"):
        load_plan(tmp_path / "missing.yaml")
    with pytest.raises(PlanError, match="directory"):
        load_plan(tmp_path)
    with pytest.raises(PlanError, match="not UTF-8") as caught:
        load_plan(_binary(tmp_path))
    assert caught.value.problems[0].line == 2


def _binary(tmp_path: Path) -> Path:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\nname: caf\xe9\n")
    return path


def test_find_plan_uses_the_only_plan(tmp_path):
    (tmp_path / "plans").mkdir()
    write(tmp_path / "plans", "version: 1\n", "prod.yaml")
    assert find_plan(None, tmp_path) == tmp_path / "plans" / "prod.yaml"
    assert find_plan(Path("other.yaml"), tmp_path) == tmp_path / "other.yaml"


def test_find_plan_refuses_none_or_several(tmp_path):
    with pytest.raises(PlanError, match="orchestrator init"):
        find_plan(None, tmp_path)
    (tmp_path / "plans").mkdir()
    write(tmp_path / "plans", "version: 1\n", "a.yaml")
    write(tmp_path / "plans", "version: 1\n", "b.yml")
    with pytest.raises(PlanError) as caught:
        find_plan(None, tmp_path)
    assert "plans/a.yaml, plans/b.yml" in caught.value.problems[0].message


def test_json_schema_describes_the_plan():
    schema = plan_json_schema()
    assert schema["required"] == ["version"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "version",
        "project",
        "exchange",
        "accounts",
        "backend",
        "defaults",
        "subaccounts",
        "notify",
        "notify_level",
    }
    assert set(schema["$defs"]["BackendModel"]["properties"]) == {"kind", "dsn_env", "schema"}
    key = schema["$defs"]["KeyModel"]
    assert "withdrawals" not in str(key["properties"]["permissions"])
    assert key["additionalProperties"] is False


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "quant",
            "read-only",
            "spot",
            "withdrawals",
            "30d",
            "x",
            "",
            "203.0.113.10",
            "10.0.0.1",
            "file:secrets/",
            "vault:a",
            "none",
            "a@example.com",
        ]
    ),
)
_FIELDS = st.sampled_from(
    [
        "version",
        "exchange",
        "defaults",
        "subaccounts",
        "keys",
        "label",
        "name",
        "email",
        "virtual",
        "ips",
        "permissions",
        "profile",
        "kind",
        "endpoint",
        "rotate_after",
        "ip_restriction",
        "reason",
        "prune",
    ]
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_FIELDS, inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_any_yaml_value_gives_a_plan_or_plan_error(value):
    """Whatever the shape of the data, loading never fails with anything but PlanError."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.yaml"
        path.write_text(yaml.safe_dump(value), encoding="utf-8")
        try:
            load_plan(path)
        except PlanError as exc:
            assert all(p.line is None or p.line >= 1 for p in exc.problems)


def test_verify_on_a_whitelisted_key_warns_that_this_host_must_be_listed(tmp_path):
    from orchestrator.config import load_plan

    plan = tmp_path / "p.yaml"
    plan.write_text(
        "version: 1\nsubaccounts:\n  - name: s\n    email: s@example.com\n    keys:\n"
        "      - label: bot\n        permissions: [read, spot]\n        ips: [203.0.113.10]\n"
        "        verify: true\n"
    )
    warnings = [w.format() for w in load_plan(plan).warnings]
    assert any("verify: true" in w and "public IP" in w and ":9:" in w for w in warnings)
