"""The client's HTTP transport: httpx's own, over a connection pool that checks its idle
connections cheaply.

Every time a request starts or ends, httpcore's pool asks each idle connection whether the
server has closed it (its socket is readable). Through anyio that question rebuilds a table of
socket attributes, a `getpeername` call included, each time: with a few dozen connections and
a thousand calls it cost the client seconds of CPU. Here the raw socket is looked up once per
connection and the question is one `poll`, asked at most once per step of the event loop: a
closed connection is still never reused.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class PooledTransport(httpx.AsyncHTTPTransport):
    """`httpx.AsyncHTTPTransport` (HTTP/1.1) whose pool checks idle connections with one poll.

    `verify` is httpx's (True: the system's CA bundle); a plain-http base URL carries no TLS, so
    the client passes False there and skips loading the bundle."""

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(limits=limits, verify=False)
        ssl_context = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify=verify)
        )
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(),
        )


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")
        self._readable: bool | None = None  # the answer for the current event-loop step

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return self._readable_now()
        return self._inner.get_extra_info(info)

    def _readable_now(self) -> bool:
        """`readable`, asked once per step of the event loop: the pool asks on every request
        that starts or ends, many times in one step when a window's calls go out at once, and
        nothing this process does can change the answer before the step ends."""
        if self._readable is None:
            self._readable = readable(self._socket)
            asyncio.get_running_loop().call_soon(self._forget)
        return self._readable

    def _forget(self) -> None:
        self._readable = None


def readable(sock: socket.socket | None) -> bool:
    """Whether reading `sock` would not block; for an idle HTTP/1.1 connection that means the
    server closed it (or broke the protocol): either way it must not be reused. A socket that
    cannot be asked counts as readable."""
    if sock is None:
        return True
    fd = sock.fileno()
    if fd < 0:
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
