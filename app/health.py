"""Liveness and readiness. The paths are the one source for the Cloud Run probes and the smoke test."""

from http import HTTPStatus
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from app.dependencies import Store
from app.problems import problem_responses

LIVENESS_PATH = "/health/live"
READINESS_PATH = "/health/ready"

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


@router.get(LIVENESS_PATH, summary="The process is serving; never touches storage.")
async def live() -> Health:
    return Health()


@router.get(
    READINESS_PATH,
    summary="Storage answers within the readiness timeout.",
    responses=problem_responses(HTTPStatus.SERVICE_UNAVAILABLE),
)
async def ready(store: Store) -> Health:
    await store.check()
    return Health()
