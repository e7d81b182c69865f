"""Lets the process serve before a slow-to-build store is ready.

Importing the Firestore client (gRPC, protobuf) takes about as long as the rest of start-up together.
Liveness needs no store, so the store is built in a worker thread while the server already answers;
requests that need it wait for it, and readiness fails until it is there.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import date

from app.errors import StorageUnavailable
from app.storage.port import BirthdayStore

logger = logging.getLogger(__name__)


class DeferredStore:
    def __init__(self, build: Callable[[], BirthdayStore]) -> None:
        self._built: asyncio.Future[BirthdayStore] = asyncio.ensure_future(asyncio.to_thread(build))

    async def save(self, username: str, date_of_birth: date) -> None:
        await (await self._store()).save(username, date_of_birth)

    async def load(self, username: str) -> date | None:
        return await (await self._store()).load(username)

    async def check(self) -> None:
        await (await self._store()).check()

    async def close(self) -> None:
        if not self._built.done():
            self._built.cancel()
        try:
            store = await self._built
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - a store that never came has nothing to close
            return
        await store.close()

    async def _store(self) -> BirthdayStore:
        try:
            return await asyncio.shield(self._built)
        except Exception:
            logger.exception("The store could not be built")
            raise StorageUnavailable("storage is not configured correctly; retry later") from None
