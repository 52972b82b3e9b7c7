"""The fast YAML reader (libyaml events) gives exactly what the composer gives, or steps aside.

Plans are read from libyaml's event stream when they are plain; anything else goes through
PyYAML's composer. Whatever the text, the two must agree on data, positions and problems.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.config.source import (
    YamlSyntaxError,
    _read_composed,
    _read_plain,
    read_yaml,
)

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.yaml"))
REPO = Path(__file__).resolve().parents[2]

TRICKY = [
    "version: 1\nname: 'quoted: yes'\nother: \"dq \\t esc\"\n",
    "a: 1\nb: 1.5\nc: true\nd: ~\ne: 2024-01-02\nf: 0x1f\ng: 1_000\nh: .inf\n",
    "1: one\nnull: two\ntrue: three\n2024-01-02: four\n",
    "é: ünïcode\nlist: [ä, 'ö', \"ü\"]\nnested: {x: [1, {y: z}]}\n",
    "text: |\n  line one\n  line two\nfolded: >\n  a\n  b\nafter: 1\n",
    "# comment\n---\nkeys:\n- label: a   # trailing\n- label: b\n...\n",
    "ips: [203.0.113.10,   198.51.100.7]\nempty: []\nnone: {}\n",
    "\ufeffversion: 1\n",
    "key: value  # comment\n",
    "? complex\n: value\n",
    "'<<': quoted merge is a plain key\n",
]
FALLS_BACK = [
    "a: &x 1\nb: *x\n",  # anchors and aliases
    "a: 1\na: 2\n",  # duplicate key
    "base: &b {x: 1}\nm:\n  <<: *b\n",  # merge key
    "a: !!python/name:os.system x\n",  # unreadable tag
    "a: !!map {x: 1}\n",  # collection tag
    "explicit: !!str 12\nint: !!int '7'\nbare: ! x\n",  # scalar tags
    "key:\tvalue\n",  # a tab, which libyaml accepts where PyYAML does not
    "? [a, b]\n: c\n",  # a key that is no scalar
    "a: [1, 2\n",  # broken
    "a: 1\n---\nb: 2\n",  # two documents
    "a: 1\nb: \x00\n",  # control character
    "",
]


def _outcome(read, text: str):
    try:
        source = read(text)
    except YamlSyntaxError as exc:
        return ("error", exc.problem)
    except RecursionError:
        return ("recursion",)
    return (source.data, source.values, source.keys, source.problems)


def _agrees(text: str) -> bool:
    """The fast reader either declines or matches the composer exactly."""
    fast = _read_plain(text)
    if fast is None:
        return True
    return (fast.data, fast.values, fast.keys, fast.problems) == _outcome(_read_composed, text)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_corpus_plan_reads_the_same(path: Path):
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    assert _agrees(text)
    assert _outcome(read_yaml, text) == _outcome(_read_composed, text)


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_but_plain_yaml_reads_the_same(text: str):
    assert _agrees(text)
    assert _outcome(read_yaml, text) == _outcome(_read_composed, text)


@pytest.mark.parametrize("text", FALLS_BACK)
def test_what_only_the_composer_reports_goes_to_the_composer(text: str):
    assert _read_plain(text) is None
    assert _outcome(read_yaml, text) == _outcome(_read_composed, text)


def test_a_plain_plan_takes_the_fast_path():
    """The benchmark's plans and the example plan must not silently lose the fast path."""
    plan = (REPO / "plans" / "example.yaml").read_text()
    lines = ["version: 1", "subaccounts:"]
    for i in range(30):
        lines += [f"  - name: s{i}", f"    email: s{i}@example.com", "    keys:"]
        lines += ["      - label: Bot00", "        profile: quant", "        ips: [203.0.113.10]"]
    for text in (plan, "\n".join(lines) + "\n"):
        fast = _read_plain(text)
        assert fast is not None
        assert (fast.data, fast.values, fast.keys) == _outcome(_read_composed, text)[:3]


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.text(alphabet="\u202e\ufeff\u00e9abc-:[]{}#&*!|>'\"%@`\t ", max_size=16),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(structures, st.booleans())
def test_dumped_structures_read_the_same(data, flow: bool):
    text = yaml.safe_dump(data, allow_unicode=True, default_flow_style=flow)
    assert _agrees(text)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet="ab:-[]{},'\"#&*!|>?%@\\ \t\n\r\u00e9\u20281.~", max_size=120))
def test_random_text_reads_the_same(text: str):
    assert _agrees(text)
