"""The emulator over HTTP on loopback (stdlib `ThreadingHTTPServer`), for `emulator serve`."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from orchestrator.emulator.core import Emulator, EmuRequest


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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorServer
    server_version = "emulator"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; without this, Nagle plus delayed ACKs add
        # 40 ms to every keep-alive request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve()

    do_POST = do_PUT = do_DELETE = do_GET

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        answer = self.server.emulator.handle(
            EmuRequest(
                method=self.command,
                path=path,
                raw_query=query,
                body=self._body(),
                headers=dict(self.headers.items()),
                client_ip=self.client_address[0],
            )
        )
        if answer.delay_s > 0:
            time.sleep(answer.delay_s)
        if answer.drop:
            self._drop()
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

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
