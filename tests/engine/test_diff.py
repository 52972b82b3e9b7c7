from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.domain.model import Desired, DesiredKey, DesiredSubaccount, Live, LiveKey
from orchestrator.domain.naming import api_name
from orchestrator.engine.changeset import ActionKind, Changeset
from orchestrator.engine.diff import diff
from orchestrator.engine.render import plan_lines
from orchestrator.exchange.models import Permission, SubAccount
from orchestrator.store.state import KeyRecord, RetiredKey, State
from tests.engine.simulate import simulate

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EMAIL = "quant@example.com"
SPOT, FUTURES = Permission.SPOT, Permission.FUTURES


def key(label="bot", perms=(SPOT,), ips=("203.0.113.10",), **kw) -> DesiredKey:
    return DesiredKey(subaccount="quant", label=label, permissions=frozenset(perms), ips=ips, **kw)


def plan(*keys, prune=False, **sub) -> Desired:
    sub = sub or {"email": EMAIL}
    return Desired("p", (DesiredSubaccount(name="quant", prune=prune, keys=tuple(keys), **sub),))


def live_key(
    label="bot",
    gen=1,
    perms=(SPOT,),
    ips=("203.0.113.10",),
    api="K1",
    name=None,
    created=NOW - timedelta(days=1),
) -> LiveKey:
    return LiveKey(
        email=EMAIL,
        api_name=name or api_name(label, gen),
        api_key=api,
        permissions=frozenset(perms),
        restricted=bool(ips),
        ips=tuple(ips),
        created_ms=int(created.timestamp() * 1000),
    )


def live(*keys, email=EMAIL) -> Live:
    return Live(subaccounts=(SubAccount(email=email),), keys={email: tuple(keys)})


def record(k: LiveKey, label="bot", gen=1, previous=(), created=NOW - timedelta(days=1)):
    return KeyRecord(
        subaccount="quant",
        email=EMAIL,
        label=label,
        api_key=k.api_key,
        api_name=k.api_name,
        generation=gen,
        key_type="ed25519",
        created_at=created,
        permissions=sorted(p.value for p in k.permissions),
        ips=list(k.ips),
        sink="file:secrets/",
        previous=list(previous),
    )


def state(*records) -> State:
    return State(lineage="L", serial=3, plan="p", keys={f"quant/{r.label}": r for r in records})


def kinds(cs: Changeset) -> list[str]:
    return [a.kind.value for a in cs.actions]


def test_missing_key_is_created_with_generation_one():
    cs = diff(plan(key()), live(), None, NOW)
    assert kinds(cs) == ["create"]
    assert cs.actions[0].api_name == "orc-bot-g1"


def test_matching_key_has_no_changes():
    assert not diff(plan(key()), live(live_key()), None, NOW).has_changes


def test_key_recognised_by_api_name_without_state():
    cs = diff(plan(key()), live(live_key(gen=4)), None, NOW)
    assert not cs.has_changes


def test_permission_granted_outside_plan_is_a_possible_compromise():
    k = live_key(perms=(SPOT, FUTURES))
    cs = diff(plan(key()), live(k), state(record(live_key())), NOW)
    (action,) = cs.actions
    assert action.kind == ActionKind.UPDATE_PERMISSIONS and action.security
    assert "possible compromise" in action.reason and "-futures" in action.reason


def test_plan_narrowing_a_recorded_permission_is_routine():
    k = live_key(perms=(SPOT, FUTURES))
    cs = diff(plan(key()), live(k), state(record(k)), NOW)
    assert kinds(cs) == ["update_permissions"] and not cs.actions[0].security


def test_ip_change_is_one_add_and_one_remove():
    k = live_key(ips=("198.51.100.7",))
    cs = diff(plan(key(ips=("198.51.100.8",))), live(k), state(record(k)), NOW)
    (action,) = cs.actions
    assert action.ips_add == ("198.51.100.8",) and action.ips_remove == ("198.51.100.7",)
    assert not action.security


def test_unrecorded_ip_is_a_possible_compromise():
    k = live_key(ips=("203.0.113.10", "198.51.100.66"))
    cs = diff(plan(key()), live(k), state(record(live_key())), NOW)
    assert cs.actions[0].security and "198.51.100.66" in cs.actions[0].reason


def test_unrestricted_live_key_for_whitelisted_plan_is_flagged():
    k = live_key(ips=())
    cs = diff(plan(key()), live(k), state(record(live_key())), NOW)
    assert cs.actions[0].security and cs.actions[0].ips_add == ("203.0.113.10",)


def test_overdue_key_rotates_to_next_generation():
    k = live_key(gen=2, created=NOW - timedelta(days=34))
    desired = plan(key(rotate_after=timedelta(days=30), grace=timedelta(hours=1)))
    cs = diff(desired, live(k), state(record(k, gen=2, created=NOW - timedelta(days=34))), NOW)
    (action,) = cs.actions
    assert action.kind == ActionKind.ROTATE and action.generation == 3
    assert action.reason == "age 34d > rotate_after 30d" and action.grace_s == 3600


def test_retired_key_survives_grace_then_is_deleted():
    old, new = live_key(gen=1, api="OLD"), live_key(gen=2, api="NEW")
    retired = RetiredKey(
        api_key="OLD",
        api_name=old.api_name,
        generation=1,
        retired_at=NOW,
        delete_after=NOW + timedelta(hours=1),
    )
    prior = state(record(new, gen=2, previous=[retired]))
    assert not diff(plan(key()), live(old, new), prior, NOW).has_changes
    later = diff(plan(key()), live(old, new), prior, NOW + timedelta(hours=2))
    assert kinds(later) == ["delete"] and later.actions[0].api_key == "OLD"


def test_duplicate_generation_from_a_crash_is_deleted_not_duplicated():
    a, b = live_key(api="A"), live_key(api="B", created=NOW)
    cs = diff(plan(key()), live(a, b), None, NOW)
    assert kinds(cs) == ["delete"] and cs.actions[0].api_key == "A"


def test_foreign_key_is_unmanaged_unless_prune():
    foreign = live_key(name="mystery-key", api="M")
    cs = diff(plan(key()), live(live_key(), foreign), None, NOW)
    assert not cs.has_changes and cs.findings[0].kind == "unmanaged"
    pruned = diff(plan(key(), prune=True), live(live_key(), foreign), None, NOW)
    assert kinds(pruned) == ["delete"] and pruned.actions[0].reason == "not in plan (prune)"


def test_virtual_subaccount_is_created_before_its_keys():
    desired = plan(key(), virtual="copytrade")
    cs = diff(desired, Live(subaccounts=()), None, NOW)
    assert kinds(cs) == ["create_subaccount", "create"]
    assert cs.actions[1].email is None


def test_virtual_subaccount_found_by_email_prefix():
    email = "copytrade_virtual@abc123noemail.com"
    cs = diff(plan(key(), virtual="copytrade"), live(live_key(), email=email), None, NOW)
    assert not cs.has_changes


def test_missing_existing_subaccount_is_blocking():
    cs = diff(plan(key()), Live(subaccounts=()), None, NOW)
    assert cs.blocking and not cs.has_changes


def test_target_limits_actions_to_named_labels():
    cs = diff(plan(key("a"), key("b")), live(), None, NOW, targets=["b"])
    assert [a.label for a in cs.actions] == ["b"]


def test_changeset_round_trips_through_json():
    cs = diff(plan(key("a"), key("b", rotate_after=timedelta(days=1))), live(), None, NOW)
    assert Changeset.from_json(cs.to_json()) == cs


def test_render_matches_spec_shape():
    foreign = live_key(name="mystery-key", api="M")
    cs = diff(plan(key("QuantBot-BTC", perms=(SPOT, FUTURES))), live(foreign), None, NOW)
    text = "\n".join(plan_lines(cs))
    assert "  + create   quant/QuantBot-BTC" in text
    assert "read, spot, futures; ips 203.0.113.10" in text
    assert "  ! unmanaged quant/mystery-key" in text
    assert text.endswith("Plan: 1 to create, 0 to update, 0 to rotate, 0 to delete.")


# ------------------------------------------------------------------ property: diff converges

IPS = ["203.0.113.10", "203.0.113.11", "198.51.100.7", "198.51.100.8"]
LABELS = ["a", "b", "c", "bot-g2"]
perm_sets = st.frozensets(st.sampled_from(list(Permission)), max_size=3)
ip_sets = st.lists(st.sampled_from(IPS), max_size=3, unique=True).map(lambda x: tuple(sorted(x)))


@st.composite
def scenarios(draw):
    labels = draw(st.lists(st.sampled_from(LABELS), max_size=3, unique=True))
    rotate = st.sampled_from([None, timedelta(days=1), timedelta(days=30)])
    grace = st.sampled_from([timedelta(0), timedelta(hours=1)])
    desired_keys = tuple(
        DesiredKey(
            "quant",
            label,
            draw(perm_sets),
            draw(ip_sets),
            rotate_after=draw(rotate),
            grace=draw(grace),
        )
        for label in labels
    )
    prune = draw(st.booleans())
    desired = Desired(
        "p", (DesiredSubaccount("quant", email=EMAIL, prune=prune, keys=desired_keys),)
    )
    live_keys = []
    for i in range(draw(st.integers(0, 5))):
        name = draw(
            st.one_of(
                st.sampled_from(LABELS + ["x"]).flatmap(
                    lambda lab: st.integers(1, 3).map(lambda g, lab=lab: api_name(lab, g))
                ),
                st.sampled_from(["mystery", "orc-", "legacy-bot"]),
            )
        )
        ips = draw(ip_sets)
        live_keys.append(
            LiveKey(
                EMAIL,
                name,
                f"LIVE{i}",
                draw(perm_sets),
                restricted=bool(ips) and draw(st.booleans()),
                ips=ips,
                created_ms=int((NOW - timedelta(days=draw(st.integers(0, 60)))).timestamp() * 1000),
            )
        )
    prior = None
    if live_keys and draw(st.booleans()):
        k = draw(st.sampled_from(live_keys))
        if labels:
            prior = state(record(k, label=draw(st.sampled_from(labels))))
    return desired, live(*live_keys), prior


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_applying_a_changeset_then_diffing_again_yields_no_actions(scenario):
    desired, live_now, prior = scenario
    first = diff(desired, live_now, prior, NOW)
    after_live, after_state = simulate(first, live_now, prior, NOW)
    second = diff(desired, after_live, after_state, NOW)
    assert not second.has_changes, [a.reason for a in second.actions]


def test_render_pads_addresses_to_a_shared_width():
    cs = diff(plan(key("a")), live(), None, NOW)
    (line,) = plan_lines(cs, with_summary=False, width=20)
    assert line.startswith("  + create   quant/a" + " " * 13 + "  read")


class _CountedKeys(tuple):
    """A sub-account's live keys that count how often the diff walks through them."""

    walks = 0

    def __iter__(self):
        type(self).walks += 1
        return super().__iter__()


def test_a_sub_accounts_keys_are_walked_a_fixed_number_of_times_not_once_per_planned_key():
    labels = [f"bot{n}" for n in range(30)]
    keys = [live_key(label, api=f"K{n}") for n, label in enumerate(labels)]
    records = [record(k, label=label) for k, label in zip(keys, labels, strict=True)]
    listed = _CountedKeys(keys)
    found = Live(subaccounts=(SubAccount(email=EMAIL),), keys={EMAIL: listed})
    cs = diff(plan(*(key(label) for label in labels)), found, state(*records), NOW)
    assert not cs.has_changes
    assert _CountedKeys.walks <= 5


def test_a_key_state_files_under_another_label_is_not_claimed_by_its_name():
    """`bot`'s apiName is on a key that state records as `other`'s (imported under it)."""
    named_bot = live_key("bot", api="K1")
    mine = live_key("bot", gen=2, api="K2")
    cs = diff(
        plan(key("bot"), key("other")),
        live(named_bot, mine),
        state(record(named_bot, label="other"), record(mine, label="bot", gen=2)),
        NOW,
    )
    assert not cs.has_changes
