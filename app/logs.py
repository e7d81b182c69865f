"""Structured logs for Cloud Logging, written by google-cloud-logging's StructuredLogHandler: one JSON object
per line on stdout, which Cloud Run collects, correlated with the trace of the request being served.

Cloud Run writes its own request log for every request, so the service logs events and errors only; the access
log (`BIRTHDAY_ACCESS_LOG`, on under `make run`) is for places where nothing else writes one.
Never pass a date of birth to a logger: it is personal data.
"""

import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import Any, NamedTuple, TextIO

from google.cloud.logging.handlers import StructuredLogHandler
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class TraceContext(NamedTuple):
    trace_id: str
    span_id: str | None
    sampled: bool


# A ContextVar, not shared state: each request's task sees only its own trace.
_current_trace: ContextVar[TraceContext | None] = ContextVar("current_trace", default=None)

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([01]))?")
_INVALID_TRACE_ID = "0" * 32
_TRACE_HEADERS = (b"traceparent", b"x-cloud-trace-context")

access_logger = logging.getLogger("app.access")


def parse_trace_headers(traceparent: str | None, cloud_trace_context: str | None) -> TraceContext | None:
    """W3C traceparent first, then Google's X-Cloud-Trace-Context; None when neither is valid."""
    if traceparent and (match := _TRACEPARENT.fullmatch(traceparent.strip())) and match[1] != _INVALID_TRACE_ID:
        return TraceContext(match[1], match[2], sampled=bool(int(match[3], 16) & 1))
    if cloud_trace_context and (match := _CLOUD_TRACE.fullmatch(cloud_trace_context.strip())):
        # X-Cloud-Trace-Context carries the span id in decimal; Cloud Logging wants 16 hex digits.
        span = f"{int(match[2]):016x}" if match[2] and int(match[2]) < 2**64 else None
        return TraceContext(match[1].lower(), span, sampled=match[3] == "1")
    return None


class RequestLogMiddleware:
    """Makes the request's trace available to every log record written while serving it, and writes the access
    log when asked to: the path without its query string (it may carry personal data), and the client address
    that the nearest proxy appended to X-Forwarded-For."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value for name, value in scope["headers"] if name in _TRACE_HEADERS}
        context = (
            parse_trace_headers(_decode(headers.get(b"traceparent")), _decode(headers.get(b"x-cloud-trace-context")))
            if headers
            else None
        )
        token = _current_trace.set(context)
        try:
            if self.access_log:
                await self._serve_and_log(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            _current_trace.reset(token)

    async def _serve_and_log(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            request = {
                "requestMethod": scope["method"],
                "requestUrl": scope["path"],
                "status": status,
                "remoteIp": client_address(scope),
                "latency": f"{time.perf_counter() - started:.6f}s",
                "protocol": f"HTTP/{scope['http_version']}",
            }
            access_logger.info("%s %s %d", scope["method"], scope["path"], status, extra={"http_request": request})


def client_address(scope: Scope) -> str | None:
    """The last X-Forwarded-For entry: the one the proxy in front of us appended from the connection it got.

    Each proxy appends the address it received the request from
    (https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Forwarded-For), so entries further left are
    whatever the client sent, and anyone can set them. Whether Cloud Run's front end appends to a header the
    client sent or replaces it, its entry is the last. Without the header, the peer is the client.
    """
    forwarded: list[bytes] = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
    if forwarded:
        last = forwarded[-1].decode("latin-1").rsplit(",", 1)[-1].strip()
        if last:
            return last
    client = scope.get("client")
    return str(client[0]) if client else None


def _decode(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


class CloudRunLogHandler(StructuredLogHandler):
    """The library's handler, with each record stamped with the trace of the request it was written in, in the
    record attributes the library's own filter reads (`trace`, `span_id`, `trace_sampled`)."""

    def __init__(self, *, project_id: str | None, stream: TextIO) -> None:
        super().__init__(project_id=project_id, stream=stream)  # type: ignore[no-untyped-call] # the library's is untyped

    def filter(self, record: logging.LogRecord) -> Any:
        trace = _current_trace.get()
        if trace is not None:
            # Cloud Logging correlates a log entry with a trace only by the trace's full resource name.
            if self.project_id:
                record.trace = f"projects/{self.project_id}/traces/{trace.trace_id}"
            if trace.span_id:
                record.span_id = trace.span_id
            record.trace_sampled = trace.sampled
        return super().filter(record)


def configure_logging(level: str, project_id: str | None, stream: TextIO = sys.stdout) -> None:
    """Routes every logger, uvicorn's included, to one structured handler on stdout."""
    handler = CloudRunLogHandler(project_id=project_id, stream=stream)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # The library writes its one diagnostic entry through the handler directly; propagated, it would appear twice.
    logging.getLogger(StructuredLogHandler.__module__).propagate = False
