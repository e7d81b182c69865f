"""Storage outages: what every storage-backed call must answer while storage cannot (the same for the app and the
process), and a storage that can be switched off and on again at the same address."""

import asyncio
import contextlib
import threading
import time
from typing import Any, Protocol

from app.health import LIVENESS_PATH, READINESS_PATH


class HttpClient(Protocol):
    def request(self, method: str, url: str, *, json: Any = None) -> Any: ...


STORAGE_CALLS: list[tuple[str, str, dict[str, str] | None]] = [
    ("PUT", "/hello/Ada", {"dateOfBirth": "1815-12-10"}),
    ("GET", "/hello/Ada", None),
    ("GET", READINESS_PATH, None),
]


def assert_every_storage_call_is_503_within(client: HttpClient, seconds: float) -> None:
    for method, path, body in STORAGE_CALLS:
        started = time.monotonic()
        response = client.request(method, path, json=body)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        assert "retry later" in response.json()["detail"]
        assert elapsed < seconds, f"{method} {path} took {elapsed:.2f} s"
    assert client.request("GET", LIVENESS_PATH).status_code == 200


class SwitchableStorage:
    """A loopback address in front of a real server, that can be switched off and on again.

    Off, it accepts each connection and closes it at once, as an address with nothing behind it does to a gRPC
    client, and notes when it did; connections forwarded before are cut. On, it forwards to the server. The
    address stays the same throughout, as a restarted Firestore's does.
    """

    def __init__(self, upstream: str) -> None:
        self._upstream_host, upstream_port = upstream.rsplit(":", 1)
        self._upstream_port = int(upstream_port)
        self._loop = asyncio.new_event_loop()
        self._on = True
        self._forwarded: set[asyncio.StreamWriter] = set()
        self.refused_at: list[float] = []
        self.address = ""

    def __enter__(self) -> "SwitchableStorage":
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.address = f"{host}:{port}"
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def switch_off(self) -> None:
        asyncio.run_coroutine_threadsafe(self._switch(on=False), self._loop).result(timeout=10)

    def switch_on(self) -> None:
        asyncio.run_coroutine_threadsafe(self._switch(on=True), self._loop).result(timeout=10)

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _switch(self, *, on: bool) -> None:
        self._on = on
        if not on:
            for writer in list(self._forwarded):
                writer.close()

    async def _close(self) -> None:
        await self._switch(on=False)
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._on:
            self.refused_at.append(time.monotonic())
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(self._upstream_host, self._upstream_port)
        self._forwarded.update((writer, upstream_writer))
        await asyncio.gather(self._pump(reader, upstream_writer), self._pump(upstream_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        writer.close()
        self._forwarded.discard(writer)
