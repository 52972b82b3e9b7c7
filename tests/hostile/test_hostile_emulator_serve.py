"""`emulator serve` under hostile input: each bad request gets an answer (or a quiet close), the
server keeps serving signed requests correctly, and its log holds no traceback."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest
from served_emulator import ADMIN_HEADER, ServedEmulator, json_body_of, status_of

SERVER_TIME = "/api/v3/time"
LIST_SUBS = "/sapi/v1/sub-account/list"
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.fixture
def served(tmp_path):
    server = ServedEmulator(tmp_path)
    yield server
    server.stop()


def assert_serves_and_logged_nothing_alarming(served: ServedEmulator) -> None:
    assert served.alive()
    answer = served.signed("GET", LIST_SUBS, {"limit": 5})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"subAccounts": []}
    server_ms = served.signed("GET", SERVER_TIME).json()["serverTime"]
    assert abs(server_ms - time.time() * 1000) < 5_000
    log = served.log()
    assert "Traceback" not in log and "Error" not in log, log


def test_admin_routes_need_the_token_announced_at_start(served):
    assert served.admin_token and ADMIN_HEADER in served.announced
    for token in ("", "wrong", "é"):
        refused = served.admin("/_emulator/subaccount", {"email": "ui@example.com"}, token=token)
        assert refused.status_code == 401, refused.text
        assert ADMIN_HEADER in refused.json()["msg"]
    assert served.signed("GET", LIST_SUBS, {"limit": 5}).json() == {"subAccounts": []}
    added = served.admin("/_emulator/subaccount", {"email": "ui@example.com"})
    assert added.status_code == 200, added.text
    listed = served.signed("GET", LIST_SUBS, {"limit": 5}).json()["subAccounts"]
    assert [s["email"] for s in listed] == ["ui@example.com"]


@pytest.mark.parametrize("seconds", ["NaN", "Infinity", "-Infinity", "-1", '"10"', "1e300"])
def test_advance_refuses_anything_but_a_sane_forward_step(served, seconds):
    body = f'{{"seconds": {seconds}}}'.encode()
    refused = served.exchange(
        b"POST /_emulator/advance HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + f"{ADMIN_HEADER}: {served.admin_token}\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert status_of(refused) == 400, refused
    assert "seconds" in json.loads(json_body_of(refused))["msg"]
    assert_serves_and_logged_nothing_alarming(served)
    assert served.admin("/_emulator/advance", {"seconds": 0.5}).status_code == 200


def test_integers_take_ascii_digits_only(served):
    now_ms = str(int(time.time() * 1000))
    cases = [
        ({}, now_ms.translate(ARABIC_INDIC), -1100),
        ({}, "9" * 5_000, -1100),
        ({"recvWindow": "¹"}, now_ms, -1100),
        ({"recvWindow": "٥٠٠٠"}, now_ms, -1100),
        ({"limit": "¹"}, now_ms, -1100),
        ({"limit": "--5"}, now_ms, -1100),
    ]
    for params, timestamp, code in cases:
        answer = served.signed("GET", LIST_SUBS, params, timestamp=timestamp)
        assert answer.status_code == 400, (params, timestamp[:20], answer.text)
        assert answer.json()["code"] == code
    assert_serves_and_logged_nothing_alarming(served)


@pytest.mark.parametrize("length", ["abc", "-5", "١٢", "1" * 400])
def test_a_bad_content_length_gets_a_400(served, length):
    answer = served.exchange(
        f"POST {LIST_SUBS} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\nab".encode()
    )
    assert status_of(answer) == 400, answer
    assert "Content-Length" in json.loads(json_body_of(answer))["msg"]
    assert_serves_and_logged_nothing_alarming(served)


def test_a_huge_body_is_refused_without_holding_up_other_clients(served):
    header = f"GET {LIST_SUBS} HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n"
    body = b"a=b&" * 5_000_000
    answers: list[bytes] = []

    def send_huge() -> None:
        with socket.create_connection((served.host, served.port), timeout=10) as sock:
            try:
                sock.sendall(header.encode() + body)
            except OSError:
                pass  # refused before the body was read: the answer is waiting
            answers.append(sock.recv(4096))

    sender = threading.Thread(target=send_huge, daemon=True)
    sender.start()
    slowest = 0.0
    for _ in range(10):
        started = time.monotonic()
        assert served.signed("GET", SERVER_TIME).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.05)
    sender.join(timeout=15)
    assert slowest < 0.5, f"a request waited {slowest:.2f} s behind the huge body"
    assert answers and status_of(answers[0]) == 413, answers
    assert_serves_and_logged_nothing_alarming(served)


def test_a_client_going_away_leaves_no_traceback(tmp_path):
    served = ServedEmulator(tmp_path, "--latency-ms", "300")
    try:
        for _ in range(3):
            with socket.create_connection((served.host, served.port), timeout=2) as sock:
                sock.sendall(f"GET {SERVER_TIME} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                time.sleep(0.05)
                # close with a reset, so the server's answer hits a dead socket
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.5)
        assert_serves_and_logged_nothing_alarming(served)
    finally:
        served.stop()
    assert "Traceback" not in served.log()
