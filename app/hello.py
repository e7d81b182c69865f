"""The /hello/<username> routes: thin glue between HTTP, the contract's types and the store."""

from http import HTTPStatus

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from app.app_state import clock_of, store_of
from app.birthdays import days_until_birthday, greeting
from app.contract import DateOfBirthBody, Greeting, Username
from app.errors import UserNotFound
from app.problems import problem_responses
from app.request_body import MAX_BODY_BYTES, BodyLimitsRoute

HELLO_PATH = "/hello/{username}"


async def save_date_of_birth(username: Username, body: DateOfBirthBody, request: Request) -> Response:
    await store_of(request).save(username, body.born_before(clock_of(request).today()))
    return Response(status_code=HTTPStatus.NO_CONTENT)


async def greet(username: Username, request: Request) -> JSONResponse:
    date_of_birth = await store_of(request).load(username)
    if date_of_birth is None:
        raise UserNotFound(
            f"no date of birth is stored for {username!r}; save one with PUT {HELLO_PATH.format(username=username)}"
        )
    # Built by hand: FastAPI would otherwise validate and serialise the model again on every request.
    return JSONResponse({"message": greeting(username, days_until_birthday(date_of_birth, clock_of(request).today()))})


def add_hello_routes(app: FastAPI) -> None:
    # Added to the app's own router rather than through an included one, so that a 405 can list every method
    # the path allows (problems._allowed_methods walks the app's own routes).
    app.router.add_api_route(
        HELLO_PATH,
        save_date_of_birth,
        methods=["PUT"],
        summary="Save or replace a user's date of birth.",
        description=f"The body is at most {MAX_BODY_BYTES} bytes of JSON; Content-Type may be omitted.",
        status_code=HTTPStatus.NO_CONTENT,
        response_class=Response,
        responses=problem_responses(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            HTTPStatus.SERVICE_UNAVAILABLE,
        ),
        tags=["hello"],
        route_class_override=BodyLimitsRoute,
        # The contract accepts a JSON body sent without a Content-Type.
        strict_content_type=False,
    )
    app.router.add_api_route(
        HELLO_PATH,
        greet,
        methods=["GET"],
        summary="Greet a user with the days left until their birthday.",
        response_model=Greeting,
        responses=problem_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.SERVICE_UNAVAILABLE),
        tags=["hello"],
    )
