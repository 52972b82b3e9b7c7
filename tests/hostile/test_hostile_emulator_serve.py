"""`emulator serve` under hostile input: each bad request gets an answer (or a quiet close), the
server keeps serving signed requests correctly, and its log holds no traceback."""

from __future__ import annotations

import json
import random
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


def hostile_requests(token: str, rng: random.Random) -> list[bytes]:
    """The cases above and their like, plus random bytes and mangled valid requests."""
    now_ms = str(int(time.time() * 1000))
    valid = f"GET {LIST_SUBS}?limit=5&timestamp={now_ms} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    admin = f"{ADMIN_HEADER}: {token}\r\n"

    def post(path: str, body: bytes, extra: str = "") -> bytes:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    def signed_get(query: str) -> bytes:
        return f"GET {LIST_SUBS}?{query} HTTP/1.1\r\nX-MBX-APIKEY: k\r\n\r\n".encode()

    fixed = [
        *(post("/_emulator/advance", f'{{"seconds": {s}}}'.encode(), admin) for s in ADVANCES),
        post("/_emulator/advance", b'{"seconds": 5}'),
        post("/_emulator/subaccount", b"[" * 60_000, admin),
        post("/_emulator/inject", b'{"kind": "drop_after", "count": 1e400}', admin),
        post("/_emulator/subaccount", b'"email"', admin),
        *(f"POST {LIST_SUBS} HTTP/1.1\r\nContent-Length: {n}\r\n\r\n".encode() for n in LENGTHS),
        f"POST {LIST_SUBS} HTTP/1.1\r\nContent-Length: 20000000\r\n\r\n".encode() + b"a" * 9000,
        f"POST {LIST_SUBS} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".encode(),
        signed_get(f"timestamp={now_ms.translate(ARABIC_INDIC)}"),
        signed_get("timestamp=" + "9" * 5_000),
        signed_get(f"timestamp={now_ms}&recvWindow=%C2%B9"),
        *(f"{method} / HTTP/1.1\r\n\r\n".encode() for method in METHODS),
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 150 + b"\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /api/v3/ping\r\n\r\n",
        b"\r\n\r\n",
        b"",
        b"GET /\x00\xff\xfe HTTP/1.1\r\n\r\n",
        b"GET /api/v3/ping HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
        b"GET /api/v3/ping HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n",
    ]
    noise = [rng.randbytes(rng.randint(1, 2_000)) for _ in range(150)]
    mangled = [mangle(valid, rng) for _ in range(150)]
    return fixed + noise + mangled


ADVANCES = ("NaN", "Infinity", "-Infinity", "-1", '"10"', "1e300", "true", "null", "[]")
LENGTHS = ("abc", "-5", "١٢", "1" * 400, "1, 2", "")
METHODS = ("FOO", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "G\x01T", "get")


def mangle(request: bytes, rng: random.Random) -> bytes:
    data = bytearray(request)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data[: rng.randint(1, len(data))])


def answered_cleanly(answer: bytes) -> bool:
    """An HTTP answer below 500 (or 501 for an unknown method, 505 for an unknown HTTP version)
    and a JSON body (none for HEAD), or a quiet close."""
    status = status_of(answer)
    if status is None:
        return answer == b""
    body = json_body_of(answer)
    return (status < 500 or status in (501, 505)) and (body == b"" or body.startswith(b"{"))


def open_slowloris(served: ServedEmulator, rng: random.Random, count: int) -> list[socket.socket]:
    """Connections that send part of a request and then nothing."""
    partial = [b"GET /api/v3/ping HTTP/1.1\r\nHost: x\r\n", b"POST /", b"G"]
    held = []
    for _ in range(count):
        sock = socket.create_connection((served.host, served.port), timeout=2)
        sock.sendall(rng.choice(partial))
        held.append(sock)
    return held


def test_hostile_http_leaves_the_server_up_correct_and_quiet(served, chaos):
    rng = random.Random(20_240_611)
    assert served.admin("/_emulator/subaccount", {"email": "ui@example.com"}).status_code == 200
    held = open_slowloris(served, rng, 40)
    try:
        assert served.signed("GET", SERVER_TIME).status_code == 200  # not starved by them
        cases = hostile_requests(served.admin_token, rng)
        deadline = time.monotonic() + 90
        unclean = []
        for raw in cases:
            assert time.monotonic() < deadline, "the hostile requests took too long"
            answer = served.exchange(raw, timeout=2)
            if not answered_cleanly(answer):
                unclean.append((raw[:80], answer[:200]))
    finally:
        for sock in held:
            sock.close()
    chaos.add("bad_inputs_tried", len(cases) + len(held))
    chaos.add("bad_inputs_refused_cleanly", len(cases) + len(held) - len(unclean))
    assert not unclean, unclean[:5]
    listed = served.signed("GET", LIST_SUBS, {"limit": 5}).json()["subAccounts"]
    assert [s["email"] for s in listed] == ["ui@example.com"]
    server_ms = served.signed("GET", SERVER_TIME).json()["serverTime"]
    assert abs(server_ms - time.time() * 1000) < 5_000
    log = served.log()
    assert "Traceback" not in log and "internal error" not in log, log
