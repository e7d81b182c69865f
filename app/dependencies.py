"""What route handlers receive from the app, as Annotated dependencies.

Both are `async def` although neither awaits: FastAPI runs a plain `def` dependency in its thread pool,
which costs more than the whole handler.
"""

from typing import Annotated, cast

from fastapi import Depends, Request

from app.clock import Clock
from app.storage.port import BirthdayStore


async def _store(request: Request) -> BirthdayStore:
    return cast(BirthdayStore, request.state.store)


async def _clock(request: Request) -> Clock:
    return cast(Clock, request.app.state.clock)


Store = Annotated[BirthdayStore, Depends(_store)]
Today = Annotated[Clock, Depends(_clock)]
