"""Contract: every endpoint of exchange/endpoints.py, through the real client, against the
emulator in-process and over HTTP (see conftest.py's `world`)."""

from __future__ import annotations

import time

import pytest

from orchestrator.exchange import endpoints as ep
from orchestrator.exchange.errors import Unauthorized
from orchestrator.exchange.models import Permission
from orchestrator.exchange.signing import Ed25519Signer, HmacSigner, generate_ed25519

QUANT = frozenset({Permission.SPOT, Permission.FUTURES})
WHITELISTED = "198.51.100.7"
OTHER_IP = "198.51.100.99"
COVERED = {
    "server_time",
    "create_virtual_subaccount",
    "list_subaccounts",
    "create_api_key",
    "create_api_key_v2",
    "list_api_keys",
    "delete_api_key",
    "set_permissions",
    "add_ip_restriction",
    "get_ip_restriction",
    "delete_ips",
    "api_restrictions",
}


def test_this_suite_covers_every_endpoint():
    assert {e.name for e in ep.ALL} == COVERED


async def test_server_time_is_near_the_local_clock(master):
    server_ms = await master.server_time()
    assert abs(server_ms - time.time() * 1000) < 5_000
    await master.sync_time()
    assert abs(master.time_offset_ms) < 5_000
    assert master.call_counts()["server_time"] == 2


async def test_virtual_subaccount_is_created_and_listed(master):
    email = await master.create_virtual_subaccount("quantbot")
    assert email.startswith("quantbot_virtual@") and email.endswith(".com")
    listed = await master.list_subaccounts(email=email)
    assert [s.email for s in listed] == [email]
    assert listed[0].sub_user_id and listed[0].create_time > 0 and not listed[0].is_freeze


async def test_subaccounts_page_by_limit(master):
    made = [await master.create_virtual_subaccount(f"page{i}") for i in range(5)]
    pages = [await master.list_subaccounts(page=p, limit=2) for p in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    assert [s.email for page in pages for s in page] == made
    assert [s.email for s in await master.list_all_subaccounts()] == made


async def test_hmac_key_returns_its_secret_once(master, sub_email):
    created = await master.create_api_key(sub_email, "orc-Bot-g1", QUANT, [WHITELISTED])
    assert created.secret is not None and len(created.secret.get_secret_value()) == 64
    assert created.api_name == "orc-Bot-g1" and created.email == sub_email
    assert created.permissions == QUANT
    assert created.restricted and created.ips == (WHITELISTED,)
    page = await master.list_api_keys(sub_email)
    assert page.total == 1
    (row,) = page.rows
    assert (row.api_key, row.api_name, row.permissions) == (created.api_key, "orc-Bot-g1", QUANT)
    assert row.created_ms > 0
    assert created.secret.get_secret_value() not in repr(page)


async def test_ed25519_key_registers_the_public_key_and_returns_no_secret(world, master, sub_email):
    private_pem, public_pem = generate_ed25519()
    created = await master.create_api_key(
        sub_email, "orc-Ed-g1", frozenset(), [], public_key_pem=public_pem
    )
    assert created.secret is None
    assert not created.restricted and created.ips == ()
    stored = world.emulator.accounts.key_of(sub_email, created.api_key)
    assert stored.key_type == "ED25519"
    signer = Ed25519Signer.from_pem(created.api_key, private_pem)
    assert signer.public_key_pem().strip() == stored.public_key.strip()


async def test_key_listing_pages_by_size_up_to_the_30_key_cap(master, sub_email):
    names = [f"orc-K{i:02d}-g1" for i in range(30)]
    for name in names:
        await master.create_api_key(sub_email, name, frozenset(), [])
    pages = [await master.list_api_keys(sub_email, page=p, size=10) for p in (1, 2, 3, 4)]
    assert [p.total for p in pages] == [30, 30, 30, 30]
    assert [len(p.rows) for p in pages] == [10, 10, 10, 0]
    assert [r.api_name for p in pages for r in p.rows] == names
    everything = await master.list_all_api_keys(sub_email)
    assert [k.api_name for k in everything] == names
    one = await master.list_api_keys(sub_email, api_key=everything[7].api_key)
    assert one.total == 1 and one.rows[0].api_name == names[7]


async def test_delete_key_takes_effect_at_once(master, sub_email):
    keep = await master.create_api_key(sub_email, "orc-Keep-g1", frozenset(), [])
    gone = await master.create_api_key(sub_email, "orc-Gone-g1", frozenset(), [])
    await master.delete_api_key(sub_email, gone.api_key)
    assert [k.api_key for k in await master.list_all_api_keys(sub_email)] == [keep.api_key]


async def test_set_permissions_replaces_the_flags(master, sub_email):
    created = await master.create_api_key(sub_email, "orc-Perm-g1", frozenset(), [])
    await master.set_permissions(sub_email, created.api_key, QUANT)
    (row,) = (await master.list_api_keys(sub_email)).rows
    assert row.permissions == QUANT
    await master.set_permissions(sub_email, created.api_key, frozenset({Permission.OPTIONS}))
    (row,) = (await master.list_api_keys(sub_email)).rows
    assert row.permissions == frozenset({Permission.OPTIONS})


async def test_ip_restriction_add_get_delete_and_remove(master, sub_email):
    created = await master.create_api_key(sub_email, "orc-Ips-g1", QUANT, [])
    key = created.api_key
    got = await master.get_ip_restriction(sub_email, key)
    assert (got.api_key, got.restricted, got.ips) == (key, False, ())

    added = await master.add_ip_restriction(sub_email, key, ["203.0.113.10", "203.0.113.11"])
    assert added.restricted and set(added.ips) == {"203.0.113.10", "203.0.113.11"}
    everything = ["203.0.113.10", "203.0.113.11", "203.0.113.12"]
    more = await master.add_ip_restriction(sub_email, key, everything)  # right in either mode
    assert set(more.ips) == set(everything)
    got = await master.get_ip_restriction(sub_email, key)
    assert got.restricted and set(got.ips) == set(more.ips) and got.update_time > 0

    left = await master.delete_ips(sub_email, key, ["203.0.113.10", "203.0.113.12"])
    assert left.restricted and left.ips == ("203.0.113.11",)
    assert (await master.get_ip_restriction(sub_email, key)).ips == ("203.0.113.11",)

    lifted = await master.remove_ip_restriction(sub_email, key)
    assert not lifted.restricted and lifted.ips == ()
    got = await master.get_ip_restriction(sub_email, key)
    assert not got.restricted and got.ips == ()


async def test_a_partial_add_reads_back_what_the_whitelist_became(world, master, sub_email):
    """Sending only a new address adds it or replaces the list, depending on the emulator's
    mode; the answer the client reads always matches the whitelist Binance keeps."""
    key = (await master.create_api_key(sub_email, "orc-Part-g1", QUANT, ["203.0.113.10"])).api_key
    answer = await master.add_ip_restriction(sub_email, key, ["203.0.113.12"])
    expected = {"add": {"203.0.113.10", "203.0.113.12"}, "replace": {"203.0.113.12"}}
    assert set(answer.ips) == expected[world.ip_restriction_mode]
    assert set((await master.get_ip_restriction(sub_email, key)).ips) == set(answer.ips)


@pytest.mark.parametrize("key_type", ["ed25519", "hmac"])
async def test_api_restrictions_signed_by_a_subaccount_key_honours_its_whitelist(
    world, master, sub_email, key_type
):
    perms = frozenset({Permission.SPOT, Permission.OPTIONS})
    if key_type == "ed25519":
        private_pem, public_pem = generate_ed25519()
        created = await master.create_api_key(
            sub_email, "orc-Own-g1", perms, [WHITELISTED], public_key_pem=public_pem
        )
        signer = Ed25519Signer.from_pem(created.api_key, private_pem)
    else:
        created = await master.create_api_key(sub_email, "orc-Own-g1", perms, [WHITELISTED])
        signer = HmacSigner(created.api_key, created.secret)

    inside = world.client(signer, ip=WHITELISTED)
    seen = await inside.api_restrictions(signer)
    assert seen.ip_restrict and seen.enable_reading and not seen.enable_withdrawals
    assert seen.permissions == perms
    assert seen.create_time > 0

    outside = world.client(signer, ip=OTHER_IP)
    with pytest.raises(Unauthorized) as refused:
        await outside.api_restrictions(signer)
    assert refused.value.code == -2015
    assert "whitelist" in str(refused.value)

    await master.remove_ip_restriction(sub_email, created.api_key)
    assert not (await outside.api_restrictions(signer)).ip_restrict


async def test_api_restrictions_of_the_master_key(master):
    seen = await master.api_restrictions(master._signer)
    assert seen.enable_reading and not seen.enable_withdrawals
    assert Permission.SPOT in seen.permissions


async def test_caller_ip_from_the_in_process_transport(sub_email, world, master):
    """The sandbox path: EmulatorTransport's client_ip, with no forwarding header at all."""
    if world.mode != "inprocess":
        pytest.skip("client_ip is the in-process transport's")
    from orchestrator.emulator.transport import EmulatorTransport
    from orchestrator.exchange.client import BinanceClient

    created = await master.create_api_key(sub_email, "orc-Tr-g1", frozenset(), [WHITELISTED])
    signer = HmacSigner(created.api_key, created.secret)
    world.emulator.trusted_ip_header = None
    for ip, allowed in ((WHITELISTED, True), (OTHER_IP, False)):
        transport = EmulatorTransport(world.emulator, client_ip=ip)
        async with BinanceClient("https://api.binance.com", signer, transport=transport) as c:
            if allowed:
                assert (await c.api_restrictions(signer)).ip_restrict
            else:
                with pytest.raises(Unauthorized):
                    await c.api_restrictions(signer)


async def test_call_counts_name_every_endpoint_used(master, sub_email):
    created = await master.create_api_key(sub_email, "orc-Cnt-g1", frozenset(), [])
    await master.get_ip_restriction(sub_email, created.api_key)
    await master.get_ip_restriction(sub_email, created.api_key)
    counts = master.call_counts()
    assert counts == {
        "create_virtual_subaccount": 1,
        "create_api_key": 1,
        "get_ip_restriction": 2,
    }
