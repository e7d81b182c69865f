"""What route handlers receive, as Annotated dependencies.

All of them are `async def` although none awaits: FastAPI runs a plain `def` dependency in its thread pool,
which costs more than the whole handler.
"""

from typing import Annotated, cast

from fastapi import Depends, Request

from app.clock import Clock
from app.request_body import read_date_of_birth_field
from app.storage.port import BirthdayStore
from app.validation import parse_username


async def _store(request: Request) -> BirthdayStore:
    return cast(BirthdayStore, request.state.store)


async def _clock(request: Request) -> Clock:
    return cast(Clock, request.app.state.clock)


async def _username(request: Request) -> str:
    # Read from the raw path on purpose: a declared path parameter would bring FastAPI's own 422 validation.
    return parse_username(request.path_params["username"])


Store = Annotated[BirthdayStore, Depends(_store)]
Today = Annotated[Clock, Depends(_clock)]
Username = Annotated[str, Depends(_username)]
RawDateOfBirth = Annotated[object, Depends(read_date_of_birth_field)]
