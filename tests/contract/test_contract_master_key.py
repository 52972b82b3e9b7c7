"""Contract: the v2 create and the master key's own permissions, through the real client,
against the emulator in-process and over HTTP."""

from __future__ import annotations

import pytest

from orchestrator.emulator.master import without_trading
from orchestrator.exchange.errors import Unauthorized, Unsupported
from orchestrator.exchange.models import Permission
from orchestrator.exchange.signing import Ed25519Signer, generate_ed25519

SPOT = frozenset({Permission.SPOT})
WHITELISTED = "198.51.100.7"
MASTER_TRADING = "enable 'Enable Spot & Margin Trading' on the master API key"


async def test_v2_create_makes_an_hmac_key(master, sub_email):
    created = await master.create_api_key_v2(sub_email, "orc-V2-g1", SPOT, [WHITELISTED])
    assert created.secret is not None and created.permissions == SPOT
    assert created.restricted and created.ips == (WHITELISTED,)
    (row,) = (await master.list_api_keys(sub_email)).rows
    assert (row.api_key, row.api_name) == (created.api_key, "orc-V2-g1")
    assert master.call_counts()["create_api_key_v2"] == 1


async def test_v2_create_registers_an_ed25519_key_with_fix_api_access(world, master, sub_email):
    private_pem, public_pem = generate_ed25519()
    created = await master.create_api_key_v2(
        sub_email,
        "orc-Fix-g1",
        frozenset(),
        [],
        public_key_pem=public_pem,
        fix_api_trading=True,
        fix_api_reading=True,
    )
    assert created.secret is None
    signer = Ed25519Signer.from_pem(created.api_key, private_pem)
    own = await world.client(signer).api_restrictions(signer)
    assert own.enable_reading and not own.permissions


async def test_v2_fix_api_access_on_an_hmac_key_is_unsupported(master, sub_email):
    with pytest.raises(Unsupported):
        await master.create_api_key_v2(sub_email, "orc-Fix-g1", SPOT, [], fix_api_trading=True)
    assert (await master.list_api_keys(sub_email)).total == 0


async def test_master_without_trading_gets_the_hint_on_writes_only(world, master, sub_email):
    created = await master.create_api_key(sub_email, "orc-A-g1", SPOT, [WHITELISTED])
    without_trading(world.emulator.master)
    writes = [
        master.create_api_key(sub_email, "orc-B-g1", SPOT, []),
        master.create_api_key_v2(sub_email, "orc-B-g1", SPOT, []),
        master.create_virtual_subaccount("more"),
        master.add_ip_restriction(sub_email, created.api_key, ["203.0.113.5"]),
        master.delete_ips(sub_email, created.api_key, [WHITELISTED]),
    ]
    for write in writes:
        with pytest.raises(Unauthorized) as refused:
            await write
        assert MASTER_TRADING in str(refused.value)
    assert len(await master.list_all_api_keys(sub_email)) == 1
    own = await master.master_restrictions()
    assert Permission.SPOT not in own.permissions and not own.enable_withdrawals
    await master.delete_api_key(sub_email, created.api_key)
