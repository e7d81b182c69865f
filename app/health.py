"""Liveness and readiness. The paths are the one source for the Cloud Run probes and the smoke test."""

from http import HTTPStatus
from typing import Literal

from fastapi import FastAPI, Request
from pydantic import BaseModel

from app.app_state import store_of
from app.problems import problem_responses

LIVENESS_PATH = "/health/live"
READINESS_PATH = "/health/ready"


class Health(BaseModel):
    status: Literal["ok"] = "ok"


async def live() -> Health:
    return Health()


async def ready(request: Request) -> Health:
    await store_of(request).check()
    return Health()


def add_health_routes(app: FastAPI) -> None:
    app.add_api_route(
        LIVENESS_PATH, live, methods=["GET"], tags=["health"], summary="The process is serving; never touches storage."
    )
    app.add_api_route(
        READINESS_PATH,
        ready,
        methods=["GET"],
        tags=["health"],
        summary="Storage answers within the readiness timeout.",
        responses=problem_responses(HTTPStatus.SERVICE_UNAVAILABLE),
    )
