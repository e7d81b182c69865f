"""The Firestore adapter against the real emulator: what it writes, and how it fails."""

import time
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient
from google.cloud import firestore

from app.health import READINESS_PATH
from app.main import create_app
from dev.network import free_port
from tests.conftest import TEST_PROJECT, SettingsFactory
from tests.support.blackhole import blackhole
from tests.support.clock import FixedClock
from tests.support.outage import assert_every_storage_call_is_503_within

DEADLINE = 1.0


@pytest.fixture
def direct(firestore_env: dict[str, str]) -> Iterator[firestore.Client]:
    """A client of our own, to see exactly what the service left in the emulator."""
    client = firestore.Client(project=TEST_PROJECT)
    yield client
    client.close()  # type: ignore[no-untyped-call]


def test_one_document_per_user_with_an_iso_date_and_a_server_timestamp(
    firestore_client: TestClient, direct: firestore.Client, make_settings: SettingsFactory
) -> None:
    before = time.time()
    assert firestore_client.put("/hello/Ada", json={"dateOfBirth": "1815-12-10"}).status_code == 204
    snapshot = direct.collection(make_settings().collection).document("Ada").get()
    assert snapshot.exists
    stored = snapshot.to_dict()
    assert stored is not None
    assert set(stored) == {"dateOfBirth", "updatedAt"}
    assert stored["dateOfBirth"] == "1815-12-10"
    assert stored["updatedAt"].timestamp() >= before - 1


def test_a_204_is_durable_for_a_new_process(
    firestore_env: dict[str, str], make_settings: SettingsFactory, clock: FixedClock
) -> None:
    settings = make_settings(store="firestore")
    with TestClient(create_app(settings, clock=clock)) as writer:
        assert writer.put("/hello/Grace", json={"dateOfBirth": "1906-12-09"}).status_code == 204
    with TestClient(create_app(settings, clock=clock)) as reader:
        assert reader.get("/hello/Grace").json() == {"message": "Hello, Grace! Your birthday is in 10 days"}


def test_readiness_is_200_when_firestore_answers(firestore_client: TestClient) -> None:
    assert firestore_client.get(READINESS_PATH).json() == {"status": "ok"}


@pytest.mark.parametrize("storage", ["hangs", "refuses connections"])
def test_storage_that_cannot_answer_is_503_within_the_deadline(
    storage: str,
    monkeypatch: pytest.MonkeyPatch,
    make_settings: SettingsFactory,
    clock: FixedClock,
) -> None:
    with blackhole() as hanging:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", hanging if storage == "hangs" else f"127.0.0.1:{free_port()}")
        settings = make_settings(store="firestore", request_deadline_seconds=DEADLINE, readiness_timeout_seconds=0.5)
        with TestClient(create_app(settings, clock=clock)) as client:
            assert_every_storage_call_is_503_within(client, DEADLINE + 0.5)


def test_firestore_without_a_project_refuses_to_start(make_settings: SettingsFactory) -> None:
    settings = make_settings(store="firestore", project_id=None)
    with pytest.raises(RuntimeError, match="BIRTHDAY_PROJECT_ID"), TestClient(create_app(settings)):
        pass


def test_stored_dates_come_back_as_dates(
    firestore_client: TestClient, direct: firestore.Client, make_settings: SettingsFactory
) -> None:
    direct.collection(make_settings().collection).document("Linus").set({"dateOfBirth": date(1969, 12, 28).isoformat()})
    assert firestore_client.get("/hello/Linus").json() == {"message": "Hello, Linus! Your birthday is in 29 days"}
