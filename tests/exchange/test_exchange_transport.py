"""The client's transport never reuses a connection the server closed, however cheaply it
checks: a write sent on a dead connection would be an ambiguous outcome."""

from __future__ import annotations

import asyncio
import socket

import httpx

from orchestrator.exchange.transport import PooledTransport, readable

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\n{}"
)


def test_an_open_quiet_socket_is_not_readable_and_a_closed_one_is():
    ours, theirs = socket.socketpair()
    try:
        assert not readable(ours)
        theirs.close()
        assert readable(ours)
    finally:
        ours.close()
    assert readable(None)


async def test_a_connection_the_server_closed_is_not_reused():
    """The server answers one request per connection, promises keep-alive, then hangs up."""
    connections = 0
    closed = asyncio.Event()

    async def one_answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ANSWER)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed.set()

    server = await asyncio.start_server(one_answer_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            transport=PooledTransport(limits=limits, verify=False),
        ) as client:
            for _ in range(3):
                closed.clear()
                response = await client.post("/sapi/v1/sub-account/subAccountApi", content=b"x=1")
                assert response.status_code == 200
                await asyncio.wait_for(closed.wait(), 5)
                await asyncio.sleep(0.05)  # the FIN reaches the client's socket
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 3
