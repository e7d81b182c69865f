"""Shared fixtures: one real Firestore emulator per test session, and the app built the way production builds it."""

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from dev.emulator import EmulatorMissing, FirestoreEmulator
from dev.network import free_port
from dev.service import ServiceProcess
from rehearsal.cloud import Cloud, CloudSettings
from tests.support.clock import FixedClock

# The contract's examples are easiest to read on a fixed day.
TODAY = date(2026, 11, 29)
# Firestore projects whose id starts with "demo-" can only ever reach an emulator.
TEST_PROJECT = f"demo-test-{uuid.uuid4().hex[:8]}"

SettingsFactory = Callable[..., Settings]


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    """The session's emulator: the one FIRESTORE_EMULATOR_HOST names (docker compose's), else one started here."""
    if external := os.environ.get("FIRESTORE_EMULATOR_HOST"):
        yield FirestoreEmulator.running_at(external)
        return
    instance = FirestoreEmulator(free_port(), tmp_path_factory.mktemp("emulator") / "emulator.log")
    try:
        instance.start()
    except EmulatorMissing as missing:
        pytest.exit(str(missing), returncode=4)
    yield instance
    instance.stop()


@pytest.fixture
def firestore_env(emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment that points Google's client at the emulator, also applied to this test process."""
    env = {"FIRESTORE_EMULATOR_HOST": emulator.host, "BIRTHDAY_PROJECT_ID": TEST_PROJECT}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def make_settings(request: pytest.FixtureRequest) -> SettingsFactory:
    """Settings for one test; each test gets a collection of its own, so tests never see each other's users."""
    collection = f"users-{uuid.uuid4().hex[:12]}"

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"project_id": TEST_PROJECT, "collection": collection, **overrides}
        return Settings(**values)

    return build


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(TODAY)


@pytest.fixture(params=["firestore", "memory"])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if kind == "firestore":
        request.getfixturevalue("firestore_env")
    return kind


@pytest.fixture
def client(store_kind: str, make_settings: SettingsFactory, clock: FixedClock) -> Iterator[TestClient]:
    """The real app, through its lifespan, on each store: every API behaviour is proven on the emulator too."""
    with TestClient(create_app(make_settings(store=store_kind), clock=clock)) as test_client:
        yield test_client


@pytest.fixture
def firestore_client(
    firestore_env: dict[str, str], make_settings: SettingsFactory, clock: FixedClock
) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(store="firestore"), clock=clock)) as test_client:
        yield test_client


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop the service runs on (uvloop is asyncio-compatible)."""
    return "asyncio"


@pytest.fixture
def service(emulator: FirestoreEmulator, tmp_path: Path) -> Iterator[ServiceProcess]:
    """The service as a real process (`python -m app`) on the session emulator, in a collection of its own."""
    process = ServiceProcess(
        {
            "FIRESTORE_EMULATOR_HOST": emulator.host,
            "BIRTHDAY_PROJECT_ID": TEST_PROJECT,
            "BIRTHDAY_COLLECTION": f"process-{uuid.uuid4().hex[:12]}",
        },
        tmp_path / "service.log",
    )
    process.start()
    yield process
    process.kill()


@pytest.fixture(scope="session")
def stand_ins(emulator: FirestoreEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """The rehearsal's stand-in cloud (Cloud Run, Monitoring, the lock bucket) on real time, for its own tests."""
    with Cloud(tmp_path_factory.mktemp("stand-ins"), emulator.host, CloudSettings()) as cloud:
        yield cloud
        assert cloud.not_understood == [], "a test made calls no stand-in models"
