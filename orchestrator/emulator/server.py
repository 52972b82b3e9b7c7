"""The emulator over HTTP on loopback (stdlib `ThreadingHTTPServer`), for `emulator serve`.

Whatever a client sends, it gets an answer in Binance's error shape or a quiet close, and the
log gets one line at most: a body over MAX_BODY_BYTES is refused from its Content-Length
before it is read, a malformed request line or header gets a JSON error (4xx; 501 for an
unknown method), a client that goes away is noted at debug level, and an unexpected failure
is answered 500 and logged in one line. A connection idle for IDLE_TIMEOUT_S is closed.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from orchestrator.emulator.core import JSON_TYPE, Emulator, EmuRequest, EmuResponse

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
IDLE_TIMEOUT_S = 60
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a client opening many connections
    # at once (httpx opens up to 100); each retransmitted SYN then costs 1 s, 3 s, 7 s...
    request_queue_size = 256

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        super().__init__((host, port), _Handler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        if isinstance(host, bytes | bytearray):  # the address one binds with may be bytes
            host = host.decode()
        return f"http://{host}:{port}"

    def handle_error(self, request, client_address) -> None:
        """One log line instead of socketserver's traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("client %s went away: %r", client_address[0], exc)
        else:
            log.error("emulator: internal error serving %s: %r", client_address[0], exc)


class _Refusal(Exception):
    """A request refused before the emulator sees it; the connection is closed after."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.answer = json_error(status, code, msg)


def json_error(status: int, code: int, msg: str) -> EmuResponse:
    body = json.dumps({"code": code, "msg": msg}).encode()
    return EmuResponse(status, {"Content-Type": JSON_TYPE}, body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # a request line too broken to name its version is answered with a status line, not the
    # bare body HTTP/0.9 would get
    default_request_version = "HTTP/1.1"
    server: EmulatorServer
    server_version = "emulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; without this, Nagle plus delayed ACKs add
        # 40 ms to every keep-alive request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError as exc:
            log.debug("client %s went away: %r", self.client_address[0], exc)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            body = self._body()
        except _Refusal as refusal:
            self.close_connection = True
            self._send(refusal.answer)
            return
        if body is None:
            self.close_connection = True  # the client sent less than it announced
            return
        self._send(self._answer(body))

    do_POST = do_PUT = do_DELETE = do_GET

    def _answer(self, body: bytes) -> EmuResponse:
        path, _, query = self.path.partition("?")
        request = EmuRequest(
            method=self.command,
            path=path,
            raw_query=query,
            body=body,
            headers=dict(self.headers.items()),
            client_ip=self.client_address[0],
        )
        try:
            return self.server.emulator.handle(request)
        except Exception as exc:  # a bug must not cost the client its answer
            log.error("emulator: internal error on %s %s: %r", self.command, path, exc)
            self.close_connection = True
            return json_error(500, -1000, "An unknown error occurred while processing the request.")

    def _send(self, answer: EmuResponse) -> None:
        if answer.delay_s > 0:
            time.sleep(answer.delay_s)
        if answer.drop:
            self._drop()
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _body(self) -> bytes | None:
        """The body, or None when the client closed before sending all of it."""
        length = self._content_length()
        body = self.rfile.read(length) if length > 0 else b""
        return body if len(body) == length else None

    def _content_length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            raise _Refusal(411, -1100, "Send the body with a Content-Length.")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        if not CONTENT_LENGTH.fullmatch(raw.strip()):
            raise _Refusal(400, -1100, "Header 'Content-Length' must be ASCII digits.")
        length = int(raw)
        if length > MAX_BODY_BYTES:
            raise _Refusal(413, -1100, f"Request body exceeds {MAX_BODY_BYTES} bytes.")
        return length

    def handle_expect_100(self) -> bool:
        """Refuse an oversized or malformed body before the client sends it."""
        try:
            self._content_length()
        except _Refusal as refusal:
            self.close_connection = True
            self._send(refusal.answer)
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, headers too long, unknown method) in
        Binance's error shape instead of an HTML page."""
        self.close_connection = True
        if message is None:
            message = self.responses.get(code, ("Bad request",))[0]
        self._send(json_error(code, -1000, message))

    def _drop(self) -> None:
        """Close the socket without a word, like a reset connection."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (signature from stdlib)
        pass


def start_in_thread(
    emulator: Emulator, host: str = "127.0.0.1", port: int = 0
) -> tuple[EmulatorServer, str]:
    """Serve in a daemon thread; stop with `server.shutdown(); server.server_close()`."""
    server = EmulatorServer(emulator, host, port)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="emulator-server",
        daemon=True,
    )
    thread.start()
    return server, server.base_url


def run_server(
    emulator: Emulator, host: str = "127.0.0.1", port: int = 8765, on_ready=None
) -> None:
    """Serve until Ctrl-C (or SIGTERM turned into KeyboardInterrupt by the caller)."""
    server = EmulatorServer(emulator, host, port)
    if on_ready is not None:
        on_ready(server.base_url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
