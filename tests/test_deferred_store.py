"""The store built in the background: served as soon as it exists, and a clean 503 if it never does."""

import threading
from datetime import date

import pytest

from app.errors import StorageUnavailable
from app.storage.deferred import DeferredStore
from app.storage.memory import MemoryBirthdayStore
from app.storage.port import BirthdayStore

pytestmark = pytest.mark.anyio


async def test_calls_wait_for_the_store_then_reach_it() -> None:
    built = threading.Event()
    inner = MemoryBirthdayStore()

    def slow_build() -> BirthdayStore:
        built.wait(timeout=5)
        return inner

    store = DeferredStore(slow_build)
    built.set()
    await store.save("Ada", date(1815, 12, 10))
    assert await store.load("Ada") == date(1815, 12, 10)
    await store.check()
    await store.close()
    assert await inner.load("Ada") is None, "closing the deferred store closes the store it built"


async def test_a_build_that_fails_makes_every_call_storage_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    def broken_build() -> BirthdayStore:
        raise ValueError("bad credentials")

    store = DeferredStore(broken_build)
    for call in (store.check(), store.load("Ada"), store.save("Ada", date(1815, 12, 10))):
        with pytest.raises(StorageUnavailable, match="not configured correctly"):
            await call
    assert "bad credentials" in caplog.text
    await store.close()


async def test_closing_before_the_build_finishes_is_clean() -> None:
    release = threading.Event()

    def never_ready() -> BirthdayStore:
        release.wait(timeout=5)
        return MemoryBirthdayStore()

    store = DeferredStore(never_ready)
    await store.close()
    release.set()
