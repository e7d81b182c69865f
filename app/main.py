"""The application factory: everything the service is, assembled from its settings."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from app.clock import Clock, ZoneClock
from app.encoded_slashes import EncodedSlashesStayInSegments
from app.health import add_health_routes
from app.hello import add_hello_routes
from app.logs import RequestLogMiddleware
from app.problems import install_problem_handlers
from app.settings import Settings
from app.storage.factory import open_store


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        store = open_store(settings)
        try:
            yield {"store": store}
        finally:
            await store.close()

    app = FastAPI(
        title="Birthday API",
        version="1.0.0",
        summary="Stores dates of birth and greets people on the way to their birthday.",
        lifespan=lifespan,
        # Cloud Run already measures and traces every request; FastAPI's own OpenTelemetry hooks would only
        # cost time on each one.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # /hello/John/ is no route (404), not a redirect built from the client's Host header.
        redirect_slashes=False,
    )
    app.state.clock = clock or ZoneClock(settings.zone)
    install_problem_handlers(app)
    add_hello_routes(app)
    add_health_routes(app)
    app.add_middleware(EncodedSlashesStayInSegments)
    app.add_middleware(RequestLogMiddleware, access_log=settings.access_log)
    return app
