"""What route handlers receive, as Annotated dependencies."""

from typing import Annotated, cast

from fastapi import Depends, Request

from app.clock import Clock
from app.request_body import read_date_of_birth_field
from app.storage.port import BirthdayStore
from app.validation import parse_username


def _store(request: Request) -> BirthdayStore:
    return cast(BirthdayStore, request.state.store)


def _clock(request: Request) -> Clock:
    return cast(Clock, request.app.state.clock)


def _username(request: Request) -> str:
    # Read from the raw path on purpose: a declared path parameter would bring FastAPI's own 422 validation.
    return parse_username(request.path_params["username"])


Store = Annotated[BirthdayStore, Depends(_store)]
Today = Annotated[Clock, Depends(_clock)]
Username = Annotated[str, Depends(_username)]
RawDateOfBirth = Annotated[object, Depends(read_date_of_birth_field)]
