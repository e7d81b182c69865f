"""What handlers take from the app: the store its lifespan opened, and its clock.

Read from the request, where Starlette puts the lifespan's state, rather than through FastAPI dependencies:
resolving two sub-dependencies cost about a tenth of the service's CPU per request (docs/performance.md).
"""

from typing import cast

from fastapi import Request

from app.clock import Clock
from app.storage.port import BirthdayStore


def store_of(request: Request) -> BirthdayStore:
    return cast(BirthdayStore, request.state.store)


def clock_of(request: Request) -> Clock:
    return cast(Clock, request.app.state.clock)
