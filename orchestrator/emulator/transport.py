"""The emulator as an httpx transport, sync and async, for in-process use (the sandbox)."""

from __future__ import annotations

import asyncio
import time

import httpx

from orchestrator.emulator.core import Emulator, EmuRequest, EmuResponse


class EmulatorTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Hands each request to `emulator`; `client_ip` is the caller IP it sees.

    A dropped connection surfaces as `httpx.RemoteProtocolError`, as a server closing the
    socket without answering does; whether the call was carried out depends on the fault.
    """

    def __init__(self, emulator: Emulator, *, client_ip: str = "127.0.0.1") -> None:
        self.emulator = emulator
        self.client_ip = client_ip

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        answer = self.emulator.handle(self._convert(request))
        if answer.delay_s > 0:
            time.sleep(answer.delay_s)
        return self._response(request, answer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        answer = self.emulator.handle(self._convert(request))
        if answer.delay_s > 0:
            await asyncio.sleep(answer.delay_s)
        return self._response(request, answer)

    def _convert(self, request: httpx.Request) -> EmuRequest:
        raw_path = request.url.raw_path.decode("latin-1")
        path, _, query = raw_path.partition("?")
        return EmuRequest(
            method=request.method,
            path=path,
            raw_query=query,
            body=request.content,
            headers=dict(request.headers),
            client_ip=self.client_ip,
        )

    @staticmethod
    def _response(request: httpx.Request, answer: EmuResponse) -> httpx.Response:
        if answer.drop:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(
            answer.status, headers=answer.headers, content=answer.body, request=request
        )

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
