"""Structured logs for Cloud Logging: one JSON object per line on stdout, correlated with the request's trace.

Cloud Run writes its own request log for every request, so the service logs events and errors only.
Never pass a date of birth to a logger: it is personal data.
"""

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import NamedTuple, TextIO

from starlette.types import ASGIApp, Receive, Scope, Send


class TraceContext(NamedTuple):
    trace_id: str
    span_id: str | None
    sampled: bool


# A ContextVar, not shared state: each request's task sees only its own trace.
_current_trace: ContextVar[TraceContext | None] = ContextVar("current_trace", default=None)

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([01]))?")
_INVALID_TRACE_ID = "0" * 32


def parse_trace_headers(traceparent: str | None, cloud_trace_context: str | None) -> TraceContext | None:
    """W3C traceparent first, then Google's X-Cloud-Trace-Context; None when neither is valid."""
    if traceparent and (match := _TRACEPARENT.fullmatch(traceparent.strip())) and match[1] != _INVALID_TRACE_ID:
        return TraceContext(match[1], match[2], sampled=bool(int(match[3], 16) & 1))
    if cloud_trace_context and (match := _CLOUD_TRACE.fullmatch(cloud_trace_context.strip())):
        # X-Cloud-Trace-Context carries the span id in decimal; Cloud Logging wants 16 hex digits.
        span = f"{int(match[2]):016x}" if match[2] and int(match[2]) < 2**64 else None
        return TraceContext(match[1].lower(), span, sampled=match[3] == "1")
    return None


class TraceContextMiddleware:
    """Makes the request's trace available to every log record written while serving it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            name: value for name, value in scope["headers"] if name in (b"traceparent", b"x-cloud-trace-context")
        }
        context = (
            parse_trace_headers(
                _decode(headers.get(b"traceparent")),
                _decode(headers.get(b"x-cloud-trace-context")),
            )
            if headers
            else None
        )
        token = _current_trace.set(context)
        try:
            await self.app(scope, receive, send)
        finally:
            _current_trace.reset(token)


def _decode(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


class CloudLoggingFormatter(logging.Formatter):
    """Cloud Logging's structured-logging keys: https://cloud.google.com/logging/docs/structured-logging."""

    def __init__(self, project_id: str | None) -> None:
        super().__init__()
        self._project_id = project_id

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            # Error Reporting groups errors by the stack trace in the message.
            message = f"{message}\n{self.formatException(record.exc_info)}"
        entry: dict[str, object] = {
            "severity": record.levelname,
            "message": message,
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": record.lineno,
                "function": record.funcName,
            },
            "logger": record.name,
        }
        trace = _current_trace.get()
        if trace is not None:
            if self._project_id:
                entry["logging.googleapis.com/trace"] = f"projects/{self._project_id}/traces/{trace.trace_id}"
            if trace.span_id:
                entry["logging.googleapis.com/spanId"] = trace.span_id
            entry["logging.googleapis.com/trace_sampled"] = trace.sampled
        return json.dumps(entry, default=str)


def configure_logging(level: str, project_id: str | None, stream: TextIO = sys.stdout) -> None:
    """Routes every logger, uvicorn's included, to one JSON handler on stdout."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CloudLoggingFormatter(project_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
