"""A TCP proxy on loopback that holds every chunk for a while: a slow storage, for in-flight request tests.

It runs as its own process (`python -m tests.support.slow_proxy UPSTREAM DELAY`), so that stopping it
is a signal and leaves nothing open in the test process.
"""

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from dev.service import REPOSITORY


@contextmanager
def slow_proxy(upstream: str, delay: float) -> Iterator[str]:
    """Forwards to `upstream` ("host:port"), delaying each chunk by `delay` seconds in both directions."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.slow_proxy", upstream, str(delay)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


async def _serve(upstream: str, delay: float) -> None:
    upstream_host, upstream_port = upstream.rsplit(":", 1)

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with suppress(ConnectionError):
            while chunk := await reader.read(65536):
                await asyncio.sleep(delay)
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(upstream_host, int(upstream_port))
        await asyncio.gather(pump(client_reader, upstream_writer), pump(upstream_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"{host}:{port}", flush=True)  # noqa: T201 - the parent reads the address from here
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], float(sys.argv[2])))
