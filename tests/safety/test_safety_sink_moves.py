"""A changed `secrets:` moves the key's material (no new key), a changed `key_type` makes a
new key: judged from outside, by the sandbox's live keys and by signing with what the new sink
hands a bot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.safety.safety_kit import (
    bots_keys_work,
    edit_plan,
    generations,
    holds_material_of,
    keys_without_material,
    later,
    live_api_keys,
    material_of_dead_keys,
    ok,
    plan_lines,
    sink_secrets,
)

pytestmark = pytest.mark.safety

TAX = "        ips: []                      # read-only keys may go without a whitelist\n"
COPY = "        ips: [198.51.100.7]\n"
QUANT = "        profile: quant               # read + spot + futures\n"


def ignore_bots(project: Path) -> None:
    with open(project / ".gitignore", "a", encoding="utf-8") as ignore:
        ignore.write("bots/\n")


def test_a_changed_sink_moves_every_live_generation_and_empties_the_old_one(project: Path):
    ignore_bots(project)
    ok(project, "apply", "--auto-approve")
    ok(project, "rotate", "--auto-approve", "--label", "Koinly-Tax")  # g1 in grace, g2 current
    live = live_api_keys(project)
    seen = sink_secrets(project)
    edit_plan(project, TAX, TAX + "        secrets: dotenv:bots/koinly.env\n")

    [line] = plan_lines(ok(project, "plan"), "quant/Koinly-Tax")
    assert line.lstrip().startswith("~ move")
    assert "file:secrets/ -> dotenv:bots/koinly.env: g1, g2 copied" in line
    ok(project, "apply", "--auto-approve")

    assert live_api_keys(project) == live  # no key made, none deleted
    assert bots_keys_work(project)  # the new sink's material signs, from the bot's IP
    assert not list((project / "secrets" / "quant").glob("Koinly-Tax*"))
    g1 = generations(project, "Koinly-Tax")[1]
    assert holds_material_of(project, g1, under="bots/koinly.env.g1")  # kept through grace
    assert not keys_without_material(project)
    assert "No changes" in ok(project, "plan")

    ok(project, "apply", "--auto-approve", now=later(2))  # grace over: g1 goes
    assert sorted(generations(project, "Koinly-Tax")) == [2]
    assert not material_of_dead_keys(project, seen)
    assert bots_keys_work(project)


def test_an_hmac_key_moves_from_dotenv_to_file(project: Path):
    ignore_bots(project)
    edit_plan(project, COPY, COPY + "        key_type: hmac\n        secrets: dotenv:bots/c.env\n")
    ok(project, "apply", "--auto-approve")
    live = live_api_keys(project)
    edit_plan(project, "        secrets: dotenv:bots/c.env\n", "")
    ok(project, "apply", "--auto-approve")
    assert live_api_keys(project) == live
    assert bots_keys_work(project)
    assert not (project / "bots" / "c.env").exists()
    assert not material_of_dead_keys(project)


def test_a_changed_key_type_makes_a_key_of_that_type_and_keeps_the_old_in_grace(project: Path):
    ok(project, "apply", "--auto-approve")
    seen = sink_secrets(project)
    edit_plan(project, QUANT, QUANT + "        key_type: hmac\n")
    [line] = plan_lines(ok(project, "plan"), "quant/QuantBot-BTC")
    assert line.startswith("-/+ rotate") and "key_type ed25519 -> hmac" in line
    ok(project, "apply", "--auto-approve")

    keys = generations(project, "QuantBot-BTC")
    assert sorted(keys) == [1, 2]
    assert keys[1].key_type != keys[2].key_type and keys[2].secret  # an HMAC key
    assert bots_keys_work(project)
    assert "No changes" in ok(project, "plan")
    ok(project, "apply", "--auto-approve", now=later(2))
    assert sorted(generations(project, "QuantBot-BTC")) == [2]
    assert not material_of_dead_keys(project, seen)


def test_an_old_sink_that_holds_nothing_means_a_new_key_and_the_old_one_kept(project: Path):
    ignore_bots(project)
    ok(project, "apply", "--auto-approve")
    for path in (project / "secrets" / "copy").glob("CopyTrade-Bot*"):
        path.unlink()  # the material went elsewhere by hand
    edit_plan(project, COPY, COPY + "        secrets: dotenv:bots/copy.env\n")
    [line] = plan_lines(ok(project, "plan"), "copy/CopyTrade-Bot")
    assert line.startswith("-/+ rotate") and "holds no live key" in line
    ok(project, "apply", "--auto-approve")
    assert sorted(generations(project, "CopyTrade-Bot")) == [1, 2]
    assert bots_keys_work(project)
    again = ok(project, "plan", now=later(2))
    assert "unbacked" in again and "orc-example.CopyTrade-Bot-g1" in again
    ok(project, "apply", "--auto-approve", now=later(2))
    assert sorted(generations(project, "CopyTrade-Bot")) == [1, 2]  # never deleted unasked
