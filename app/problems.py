"""Every error answer, as RFC 9457 problem details, from one table."""

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, NamedTuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match

from app.contract import rejection
from app.errors import (
    BodyTooLarge,
    InvalidBody,
    InvalidDateOfBirth,
    InvalidUsername,
    ServiceError,
    StorageUnavailable,
    UnsupportedMediaType,
    UserNotFound,
)

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# URNs, not URLs: stable names that nobody expects to dereference (RFC 9457, section 3.1.1).
PROBLEM_TYPE_BASE = "urn:birthday-api:problem:"
RETRY_AFTER_SECONDS = 1


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="URI naming the kind of problem; about:blank for plain HTTP errors.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What exactly was wrong with this request, and how to fix it.")


class ProblemKind(NamedTuple):
    status: HTTPStatus
    slug: str
    title: str


PROBLEM_KINDS: dict[type[ServiceError], ProblemKind] = {
    InvalidUsername: ProblemKind(HTTPStatus.BAD_REQUEST, "invalid-username", "Invalid username"),
    InvalidDateOfBirth: ProblemKind(HTTPStatus.BAD_REQUEST, "invalid-date-of-birth", "Invalid date of birth"),
    InvalidBody: ProblemKind(HTTPStatus.BAD_REQUEST, "invalid-body", "Invalid request body"),
    BodyTooLarge: ProblemKind(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body-too-large", "Request body too large"),
    UnsupportedMediaType: ProblemKind(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
    ),
    UserNotFound: ProblemKind(HTTPStatus.NOT_FOUND, "user-not-found", "User not found"),
    StorageUnavailable: ProblemKind(HTTPStatus.SERVICE_UNAVAILABLE, "storage-unavailable", "Storage unavailable"),
}


def problem_response(
    status: HTTPStatus,
    detail: str,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = Problem(type=type_, title=title or status.phrase, status=status, detail=detail)
    return JSONResponse(
        body.model_dump(),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _service_error(request: Request, error: Exception) -> JSONResponse:
    if not isinstance(error, ServiceError):
        return _unexpected_error(request, error)
    kind = PROBLEM_KINDS[type(error)]
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if kind.status == HTTPStatus.SERVICE_UNAVAILABLE else None
    return problem_response(
        kind.status,
        error.detail,
        type_=PROBLEM_TYPE_BASE + kind.slug,
        title=kind.title,
        headers=headers,
    )


def _http_error(request: Request, error: Exception) -> JSONResponse:
    if not isinstance(error, HTTPException):
        return _unexpected_error(request, error)
    status = HTTPStatus(error.status_code)
    headers = dict(error.headers or {})
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        # Starlette names only the methods of the first route that matched the path; RFC 9110 wants them all.
        headers["Allow"] = ", ".join(_allowed_methods(request))
        detail = f"{request.method} is not allowed on {request.url.path}; use {headers['Allow']}"
    elif status == HTTPStatus.NOT_FOUND:
        detail = f"no route serves {request.url.path}; see /docs for the API"
    else:
        detail = str(error.detail)
    return problem_response(status, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, BaseRoute) and route.matches(request.scope)[0] is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _request_validation_error(request: Request, error: Exception) -> JSONResponse:
    if not isinstance(error, RequestValidationError):
        return _unexpected_error(request, error)
    answer = rejection(error.errors())
    if answer is None:
        return problem_response(HTTPStatus.BAD_REQUEST, "the request does not match the API; see /docs")
    return _service_error(request, answer)


def _client_disconnected(request: Request, error: Exception) -> JSONResponse:
    # Nobody is left to read the answer; this is the client's doing, not an error of the service.
    logger.info("The client left before sending the whole body of %s %s", request.method, request.url.path)
    return problem_response(HTTPStatus.BAD_REQUEST, "the connection closed before the whole body arrived")


def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    return problem_response(HTTPStatus.INTERNAL_SERVER_ERROR, "unexpected error; it has been logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected_error)
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI documents a 422 for the validation errors it would answer itself; here they are 400s.
        schema = generate_openapi()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def problem_responses(*statuses: HTTPStatus) -> dict[int | str, dict[str, Any]]:
    """OpenAPI descriptions of the given error statuses, all with a problem+json body."""
    schema = Problem.model_json_schema()
    return {
        status.value: {
            "description": _DESCRIPTIONS.get(status, status.phrase),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
            **({"headers": _RETRY_AFTER_HEADER} if status == HTTPStatus.SERVICE_UNAVAILABLE else {}),
        }
        for status in statuses
    }


_RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_DESCRIPTIONS = {
    HTTPStatus.BAD_REQUEST: "Invalid username, body or date of birth; `detail` says which and how to fix it.",
    HTTPStatus.NOT_FOUND: "No date of birth is stored for this username.",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "The body is larger than 1 KiB.",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "Content-Type is present and is not application/json.",
    HTTPStatus.SERVICE_UNAVAILABLE: "Storage did not answer within the deadline; retry after Retry-After seconds.",
}
