"""The data plane: each service's URL, split by its status.traffic percentages, and one URL per tag.

Every URL is its own loopback port (there is no DNS for per-tag host names here). Requests to the service URL
go to revisions in proportion to their percent, by smooth weighted round robin, so a 10 % share is exactly
one request in ten. Each response is recorded with its revision, status and latency; the router also says
which revision answered in an `X-Rehearsal-Revision` header (Cloud Run sends none), for the client load.
"""

import asyncio
import socket
import time
from collections.abc import Callable

from aiohttp import web

from rehearsal.knative import Service, ServiceKey
from rehearsal.revisions import HOP_BY_HOP, Reply, RevisionRuntime
from rehearsal.served import RequestLog, Served

REVISION_HEADER = "X-Rehearsal-Revision"


class WeightedChoice:
    """Smooth weighted round robin: over any 100 requests, each revision gets exactly its percent."""

    def __init__(self) -> None:
        self._split: tuple[tuple[str, int], ...] = ()
        self._current: dict[str, int] = {}

    def pick(self, split: tuple[tuple[str, int], ...]) -> str:
        if split != self._split:
            self._split, self._current = split, dict.fromkeys((name for name, _ in split), 0)
        total = sum(weight for _, weight in split)
        for name, weight in split:
            self._current[name] += weight
        chosen = max(self._current, key=lambda name: self._current[name])
        self._current[chosen] -= total
        return chosen


class Router:
    def __init__(
        self, lookup: Callable[[ServiceKey], Service | None], runtime: RevisionRuntime, log: RequestLog
    ) -> None:
        self._lookup = lookup
        self._runtime = runtime
        self._log = log
        self._runner: web.AppRunner | None = None
        self._by_port: dict[int, tuple[ServiceKey, str | None]] = {}
        self._sites: dict[tuple[ServiceKey, str | None], tuple[int, web.SockSite]] = {}
        self._choices: dict[ServiceKey, WeightedChoice] = {}

    async def start(self) -> None:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()

    def url(self, key: ServiceKey, tag: str | None) -> str:
        """The URL of a service (tag None) or of one of its tags, listening from now on."""
        if (key, tag) not in self._sites:
            if self._runner is None:
                raise RuntimeError("start() the router first")
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            port = listener.getsockname()[1]
            site = web.SockSite(self._runner, listener)
            self._sites[(key, tag)] = (port, site)
            self._by_port[port] = (key, tag)
            asyncio.get_running_loop().create_task(site.start())
        return f"http://127.0.0.1:{self._sites[(key, tag)][0]}"

    async def traffic_changed(self, service: Service) -> None:
        """Close the URLs of tags that are gone; the revisions without traffic or tag stop."""
        tags = {entry.get("tag") for entry in service.status_traffic() if entry.get("tag")}
        for (key, tag), (port, site) in list(self._sites.items()):
            if key == service.key and tag is not None and tag not in tags:
                del self._sites[(key, tag)]
                del self._by_port[port]
                await site.stop()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _target(self, key: ServiceKey, tag: str | None) -> str | None:
        service = self._lookup(key)
        if service is None:
            return None
        traffic = service.status_traffic()
        if tag is not None:
            return next((entry["revisionName"] for entry in traffic if entry.get("tag") == tag), None)
        split = tuple((entry["revisionName"], int(entry["percent"])) for entry in traffic if entry.get("percent"))
        if not split:
            return None
        return self._choices.setdefault(key, WeightedChoice()).pick(split)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        port = request.transport.get_extra_info("sockname")[1] if request.transport else 0
        key, tag = self._by_port.get(port, (("", ""), None))
        body = await request.read()
        revision = self._target(key, tag)
        running = self._runtime.revision(key[0], revision) if revision else None
        if revision is None or running is None:
            reply = Reply.text(503, "Service Unavailable: no revision serves this URL.")
        else:
            headers = [(name, value) for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP]
            reply = await running.handle(request.method, request.path_qs, headers, body)
        response = web.StreamResponse(status=reply.status)
        for name, value in reply.headers:
            response.headers.add(name, value)
        if revision is not None:
            response.headers[REVISION_HEADER] = revision
        response.content_length = len(reply.body)
        await response.prepare(request)
        await response.write(reply.body)
        await response.write_eof()
        if revision is not None:
            self._log.add(
                Served(
                    at=time.time(),
                    namespace=key[0],
                    service=key[1],
                    revision=revision,
                    status=reply.status,
                    latency_ms=(time.monotonic() - started) * 1000,
                    tag=tag,
                )
            )
        return response
