"""A notification receiver on loopback (what apprise's json:// target posts to), and
notifiers to hand the commands through `Wiring`."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from orchestrator.notify import Notice, NotifySettings
from orchestrator.wiring import Wiring


class Receiver:
    """The JSON bodies posted to it, in order (title, message, type)."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.posts: list[dict] = []

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/orchestrator"

    def titles(self) -> list[str]:
        return [post["title"] for post in self.posts]

    def raw(self) -> str:
        return json.dumps(self.posts)


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", 0))
            posts.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    found = Receiver(server)
    found.posts = posts
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that takes connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


class Recorder:
    """A notifier that keeps what it is sent; `settings` is what the plan asked for."""

    def __init__(self, level: str = "high") -> None:
        self.level = level
        self.notices: list[Notice] = []
        self.settings: NotifySettings | None = None

    def opener(self, settings: NotifySettings) -> Recorder:
        self.settings = settings
        return self

    def wiring(self) -> Wiring:
        return Wiring(open_notifier=self.opener)

    def send(self, notice: Notice) -> None:
        self.notices.append(notice)


class Exploding:
    """A notifier whose every send raises, as a broken plugin might."""

    level = "high"

    def send(self, notice: Notice) -> None:
        raise RuntimeError("the notifier broke")
