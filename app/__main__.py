"""The process entry point (`python -m app`): settings, logging, then uvicorn serving the app."""

import signal
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from app.logs import configure_logging
from app.main import create_app
from app.server import HeadLimitedHttpToolsProtocol
from app.settings import Settings, discover_project_id, environment_variable

# Cloud Run sends SIGKILL 10 s after SIGTERM; in-flight requests get this long, closing the store the rest.
GRACEFUL_SHUTDOWN_SECONDS = 7


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        for problem in error.errors():
            print(
                f"invalid setting {environment_variable(str(problem['loc'][0]))}: {problem['msg']}",
                file=sys.stderr,
            )
        sys.exit(2)
    if settings.store == "firestore" and not settings.project_id:
        settings = settings.model_copy(update={"project_id": discover_project_id()})
    configure_logging(settings.log_level, settings.project_id)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http=HeadLimitedHttpToolsProtocol,
            lifespan="on",
            log_config=None,
            # The app writes its own access log (app/logs.py), which is the only place the client's address is used.
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )
    # uvicorn re-raises the signal it stopped on once it is done; after a graceful stop that is a success.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _exit_cleanly)
    server.run()
    # uvicorn returns normally when start-up fails; the exit code must say so.
    if not server.started:
        sys.exit(3)


def _exit_cleanly(signal_number: int, _: FrameType | None) -> None:
    sys.exit(0)


if __name__ == "__main__":
    main()
