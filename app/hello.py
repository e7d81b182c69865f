"""The /hello/<username> routes: thin glue between HTTP, the contract's rules and the store."""

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.birthdays import days_until_birthday, greeting
from app.dependencies import RawDateOfBirth, Store, Today, Username
from app.errors import UserNotFound
from app.problems import problem_responses
from app.request_body import DATE_OF_BIRTH_KEY, JSON_MEDIA_TYPE, MAX_BODY_BYTES
from app.validation import (
    DATE_EXAMPLE,
    DATE_PATTERN,
    USERNAME_MAX_LENGTH,
    USERNAME_PATTERN,
    parse_date_of_birth,
)

HELLO_PATH = "/hello/{username}"


class Greeting(BaseModel):
    message: str = Field(
        examples=[
            "Hello, John! Your birthday is in 5 days",
            "Hello, John! Happy birthday!",
        ]
    )


_USERNAME_PARAMETER: dict[str, Any] = {
    "name": "username",
    "in": "path",
    "required": True,
    "description": f"1 to {USERNAME_MAX_LENGTH} ASCII letters; case-sensitive.",
    "schema": {
        "type": "string",
        "pattern": USERNAME_PATTERN,
        "minLength": 1,
        "maxLength": USERNAME_MAX_LENGTH,
    },
}
_DATE_OF_BIRTH_BODY: dict[str, Any] = {
    "required": True,
    "description": (
        f"At most {MAX_BODY_BYTES} bytes. Content-Type may be omitted; any other than {JSON_MEDIA_TYPE} is 415."
    ),
    "content": {
        JSON_MEDIA_TYPE: {
            "schema": {
                "type": "object",
                "properties": {
                    DATE_OF_BIRTH_KEY: {
                        "type": "string",
                        "format": "date",
                        "pattern": DATE_PATTERN,
                        "description": "A real calendar day strictly before today, as YYYY-MM-DD.",
                        "examples": [DATE_EXAMPLE],
                    }
                },
                "required": [DATE_OF_BIRTH_KEY],
                "additionalProperties": False,
            }
        }
    },
}


async def save_date_of_birth(
    username: Username, raw_date_of_birth: RawDateOfBirth, store: Store, clock: Today
) -> Response:
    await store.save(username, parse_date_of_birth(raw_date_of_birth, clock.today()))
    return Response(status_code=HTTPStatus.NO_CONTENT)


async def greet(username: Username, store: Store, clock: Today) -> JSONResponse:
    date_of_birth = await store.load(username)
    if date_of_birth is None:
        raise UserNotFound(
            f"no date of birth is stored for {username!r}; save one with PUT {HELLO_PATH.format(username=username)}"
        )
    # Built by hand: FastAPI would otherwise validate and serialise the model again on every request.
    return JSONResponse({"message": greeting(username, days_until_birthday(date_of_birth, clock.today()))})


def add_hello_routes(app: FastAPI) -> None:
    # Added to the app itself rather than through an included router, so that a 405 can list every method
    # the path allows (problems._allowed_methods walks the app's own routes).
    app.add_api_route(
        HELLO_PATH,
        summary="Save or replace a user's date of birth.",
        status_code=HTTPStatus.NO_CONTENT,
        response_class=Response,
        responses=problem_responses(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            HTTPStatus.SERVICE_UNAVAILABLE,
        ),
        openapi_extra={
            "parameters": [_USERNAME_PARAMETER],
            "requestBody": _DATE_OF_BIRTH_BODY,
        },
        endpoint=save_date_of_birth,
        methods=["PUT"],
        tags=["hello"],
    )
    app.add_api_route(
        HELLO_PATH,
        summary="Greet a user with the days left until their birthday.",
        response_model=Greeting,
        responses=problem_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.SERVICE_UNAVAILABLE),
        openapi_extra={"parameters": [_USERNAME_PARAMETER]},
        endpoint=greet,
        methods=["GET"],
        tags=["hello"],
    )
