"""The Firestore adapter against the real emulator: what it writes, and how it fails."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from google.api_core.exceptions import PermissionDenied
from google.cloud import firestore
from google.cloud.firestore_v1.services.firestore import FirestoreAsyncClient

from app.errors import StorageUnavailable
from app.health import READINESS_PATH
from app.main import create_app
from app.storage.firestore import FirestoreBirthdayStore, firestore_api
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


class CommitSpy:
    """The generated API client, with every Commit recorded (its number of writes), and optionally refused."""

    def __init__(self, api: FirestoreAsyncClient, refusal: Exception | None = None) -> None:
        self._api = api
        self.commits: list[int] = []
        self.refusal = refusal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    async def commit(self, request: Any, **options: Any) -> Any:
        self.commits.append(len(request.writes))
        if self.refusal is not None:
            raise self.refusal
        return await self._api.commit(request, **options)


@pytest.fixture
async def spied_store(
    firestore_env: dict[str, str], make_settings: SettingsFactory, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[FirestoreBirthdayStore, CommitSpy]]:
    settings = make_settings(store="firestore")
    spy = CommitSpy(firestore_api(settings.firestore_emulator_host), refusal=getattr(request, "param", None))
    store = FirestoreBirthdayStore(
        cast(FirestoreAsyncClient, spy),
        project=TEST_PROJECT,
        database=settings.firestore_database,
        collection=settings.collection,
        deadline_seconds=DEADLINE,
        readiness_timeout_seconds=DEADLINE,
        emulator=True,
    )
    yield store, spy
    await store.close()


@pytest.mark.anyio
async def test_concurrent_saves_share_one_commit_and_each_is_durable_when_it_returns(
    spied_store: tuple[FirestoreBirthdayStore, CommitSpy], direct: firestore.Client, make_settings: SettingsFactory
) -> None:
    store, spy = spied_store
    days = {f"User{chr(65 + n)}": date(1990, 1, 1 + n) for n in range(20)}
    await asyncio.gather(*(store.save(user, day) for user, day in days.items()))
    assert spy.commits == [20]
    users = direct.collection(make_settings().collection)
    assert {user: users.document(user).get().get("dateOfBirth") for user in days} == {
        user: day.isoformat() for user, day in days.items()
    }
    assert await asyncio.gather(*(store.load(user) for user in days)) == list(days.values())


@pytest.mark.anyio
async def test_two_saves_of_one_user_in_one_commit_keep_request_order(
    spied_store: tuple[FirestoreBirthdayStore, CommitSpy], direct: firestore.Client, make_settings: SettingsFactory
) -> None:
    store, spy = spied_store
    await asyncio.gather(store.save("Ada", date(1815, 12, 10)), store.save("Ada", date(1815, 12, 11)))
    assert spy.commits == [1]
    assert direct.collection(make_settings().collection).document("Ada").get().get("dateOfBirth") == "1815-12-11"
    assert await store.load("Ada") == date(1815, 12, 11)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "spied_store",
    [PermissionDenied("the commit is refused")],  # type: ignore[no-untyped-call] # google.api_core's is untyped
    indirect=True,
)
async def test_a_failing_commit_fails_every_save_in_it_with_the_same_503(
    spied_store: tuple[FirestoreBirthdayStore, CommitSpy],
) -> None:
    store, spy = spied_store
    failures = await asyncio.gather(
        *(store.save(user, date(1990, 1, 1)) for user in ("Ada", "Grace", "Linus")), return_exceptions=True
    )
    assert spy.commits == [3]
    assert [type(failure) for failure in failures] == [StorageUnavailable] * 3
    assert {str(failure) for failure in failures} == {"storage is unavailable; retry later"}
    assert await store.load("Ada") is None, "nothing was written"
