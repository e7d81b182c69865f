"""What no model can say about a request body: its media type, its size, and repeated keys.

`BodyLimitsRoute` is the route class of every route that takes a body. Before FastAPI reads the body it
checks the path parameters (a bad username is the answer, whatever the body), refuses any media type but
JSON in UTF-8, uncompressed (415), and reads at most 1 KiB (413). It then hands FastAPI a request whose
`json()` refuses repeated keys and anything but UTF-8; those, like syntax errors, reach `contract.rejection`
as FastAPI's JSON decode errors.
"""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import Headers

from app.contract import HOW_TO, NO_BODY, NOT_JSON, REPEATED_KEY
from app.errors import BodyTooLarge, UnsupportedMediaType

MAX_BODY_BYTES = 1024
JSON_MEDIA_TYPE = "application/json"
_SEND_JSON = f"send Content-Type: {JSON_MEDIA_TYPE} (or none)"


class BodyLimitsRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle
        path_parameters = self.dependant.path_params

        async def handle_within_limits(request: Request) -> Response:
            _, errors = request_params_to_args(path_parameters, request.path_params)
            if errors:
                raise RequestValidationError(errors)
            require_json(request.headers)
            limited = _LimitedJsonRequest(request.scope, request.receive)
            await limited.body()
            return await handle(limited)

        return handle_within_limits


def require_json(headers: Headers) -> None:
    """A missing Content-Type is accepted on purpose: some clients send a raw JSON body without one."""
    encodings = [value.strip().lower() for value in headers.getlist("content-encoding")]
    if any(encoding not in ("", "identity") for encoding in encodings):
        raise UnsupportedMediaType(
            f"Content-Encoding {', '.join(encodings)} is not supported; send the body uncompressed"
        )
    content_types = headers.getlist("content-type")
    if not content_types:
        return
    if len(content_types) > 1:
        raise UnsupportedMediaType(f"the request has {len(content_types)} Content-Type headers; {_SEND_JSON}")
    media_type, *parameters = (part.strip() for part in content_types[0].split(";"))
    if media_type.lower() != JSON_MEDIA_TYPE:
        raise UnsupportedMediaType(f"Content-Type {content_types[0]!r} is not supported; {_SEND_JSON}")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            raise UnsupportedMediaType(
                f"Content-Type {content_types[0]!r} is not supported: the body must be UTF-8; {_SEND_JSON}"
            )


class _LimitedJsonRequest(Request):
    _limited_body: bytes | None = None

    async def body(self) -> bytes:
        if self._limited_body is None:
            too_large = BodyTooLarge(f"the body must be at most {MAX_BODY_BYTES} bytes; {HOW_TO}")
            declared = self.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise too_large
            body = bytearray()
            async for chunk in self.stream():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise too_large
            self._limited_body = bytes(body)
        return self._limited_body

    async def json(self) -> Any:
        raw = await self.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise json.JSONDecodeError(NOT_JSON, "", 0) from None
        if not text.strip():
            raise json.JSONDecodeError(NO_BODY, text, 0)
        try:
            return json.loads(text, object_pairs_hook=_refuse_repeated_keys)
        except RecursionError:
            raise json.JSONDecodeError(NOT_JSON, text, 0) from None
        except json.JSONDecodeError as error:
            reason = error.msg if error.msg == REPEATED_KEY else NOT_JSON
            raise json.JSONDecodeError(reason, text, error.pos) from None


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise json.JSONDecodeError(REPEATED_KEY, "", 0)
    return document
