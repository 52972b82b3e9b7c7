"""The v2 IP-restriction call: its statuses, its answer, and its two possible meanings.

Whether the call adds to the whitelist or replaces it is not documented, so the emulator can
run either way (`ip_restriction_mode`, `emulator serve --ip-restriction-mode`).
"""

from __future__ import annotations

import pytest
from emulator_kit import IP_V1, IP_V2, HmacSigner, SignedClient, create_hmac_key
from test_emulator_serve_command import Served

from orchestrator.emulator.core import Emulator

FIRST, SECOND = "203.0.113.1", "203.0.113.2"


def _client(emulator: Emulator) -> SignedClient:
    return SignedClient(emulator, HmacSigner(emulator.master.api_key, emulator.master.secret))


def _key(client: SignedClient, subaccount: str = "quant") -> dict:
    email = client.ok(
        "POST", "/sapi/v1/sub-account/virtualSubAccount", {"subAccountString": subaccount}
    )["email"]
    return {"email": email, "subAccountApiKey": create_hmac_key(client, email)["apiKey"]}


def test_status_3_is_refused(master, sub_email):
    ident = {"email": sub_email, "subAccountApiKey": create_hmac_key(master, sub_email)["apiKey"]}
    refused = master.call(
        "POST", IP_V2, {**ident, "status": 3, "thirdPartyName": "x", "ipAddress": FIRST}
    )
    assert refused.status_code == 400 and refused.json()["code"] == -1130
    assert master.ok("GET", IP_V1, ident)["ipRestrict"] == "false"


def test_absent_status_lifts_the_restriction_and_the_answer_has_no_ip_list(master, sub_email):
    ident = {"email": sub_email, "subAccountApiKey": create_hmac_key(master, sub_email)["apiKey"]}
    master.ok("POST", IP_V2, {**ident, "status": 2, "ipAddress": FIRST})
    lifted = master.ok("POST", IP_V2, ident)
    assert lifted["status"] == "1" and "ipList" not in lifted
    assert master.ok("GET", IP_V1, ident)["ipRestrict"] == "false"


def test_ip_list_is_answered_only_when_restricting_with_ips(master, sub_email):
    ident = {"email": sub_email, "subAccountApiKey": create_hmac_key(master, sub_email)["apiKey"]}
    added = master.ok("POST", IP_V2, {**ident, "status": 2, "ipAddress": FIRST})
    assert added["status"] == "2" and added["ipList"] == [FIRST]
    again = master.ok("POST", IP_V2, {**ident, "status": 2})
    assert again["status"] == "2" and "ipList" not in again
    assert master.ok("GET", IP_V1, ident)["ipList"] == [FIRST]


@pytest.mark.parametrize("mode, expected", [("add", [FIRST, SECOND]), ("replace", [SECOND])])
def test_a_second_call_adds_or_replaces_per_mode(clock, mode, expected):
    emulator = Emulator(None, clock=clock, ip_restriction_mode=mode)
    client = _client(emulator)
    ident = _key(client)
    client.ok("POST", IP_V2, {**ident, "status": 2, "ipAddress": FIRST})
    answer = client.ok("POST", IP_V2, {**ident, "status": 2, "ipAddress": SECOND})
    assert answer["ipList"] == expected
    assert client.ok("GET", IP_V1, ident)["ipList"] == expected


def test_the_default_mode_adds(clock):
    assert Emulator(None, clock=clock).ip_restriction_mode == "add"
    with pytest.raises(ValueError):
        Emulator(None, clock=clock, ip_restriction_mode="merge")


def test_serve_switch_selects_the_mode(tmp_path):
    served = Served(tmp_path / "sandbox-server.json", "--ip-restriction-mode", "replace")
    try:
        client = served.client()
        ident = _key(client)
        client.ok("POST", IP_V2, {**ident, "status": 2, "ipAddress": FIRST})
        answer = client.ok("POST", IP_V2, {**ident, "status": 2, "ipAddress": SECOND})
        assert answer["ipList"] == [SECOND]
    finally:
        assert served.stop() == 0
