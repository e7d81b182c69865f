"""How the process speaks HTTP/1.1: uvicorn's httptools protocol, with a cap on the request head.

httptools buffers a header line until it ends, with no limit of its own (uvicorn's h11 protocol has one, 16 KiB;
httptools has none): three connections each sending a 30 MB header took the process from 121 to 266 MB. Under Cloud Run
the front end limits what it forwards, but under `make run` and compose nothing stands in front of the service.
"""

import asyncio
from http import HTTPStatus
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.problems import PROBLEM_MEDIA_TYPE, Problem

# The request line and every header together; uvicorn's own h11 protocol refuses more than 16 KiB too.
MAX_REQUEST_HEAD_BYTES = 16 * 1024
_TOO_LARGE = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """Answers 431 and closes the connection once a request's line and headers pass MAX_REQUEST_HEAD_BYTES."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._reading_head = True
        # Bytes received since the current request's head began, counted whole chunks at a time: at most one
        # chunk (256 KiB with uvloop) past the cap is ever buffered.
        self._head_bytes = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > MAX_REQUEST_HEAD_BYTES:
            self._refuse()

    def on_headers_complete(self) -> None:
        head_bytes = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        self._reading_head = False
        self._head_bytes = 0
        if head_bytes > MAX_REQUEST_HEAD_BYTES:
            self._refuse()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._reading_head = True

    def _refuse(self) -> None:
        self._refused = True
        problem = Problem(
            type="about:blank",
            title=_TOO_LARGE.phrase,
            status=_TOO_LARGE,
            detail=f"the request line and headers must be at most {MAX_REQUEST_HEAD_BYTES} bytes together",
        )
        body = problem.model_dump_json().encode()
        self.logger.info("Refused a request whose head is over %d bytes", MAX_REQUEST_HEAD_BYTES)
        self.transport.write(
            f"HTTP/1.1 {_TOO_LARGE.value} {_TOO_LARGE.phrase}\r\n"
            f"content-type: {PROBLEM_MEDIA_TYPE}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()
