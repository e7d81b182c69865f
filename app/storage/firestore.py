"""The Firestore adapter: one document per user, id = username, in Firestore Native mode."""

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date

from google.api_core.exceptions import GoogleAPIError
from google.api_core.retry import if_transient_error
from google.api_core.retry_async import AsyncRetry
from google.cloud.firestore import SERVER_TIMESTAMP, AsyncClient

from app.errors import StorageUnavailable
from app.storage.batching import BatchedLoader

logger = logging.getLogger(__name__)

DATE_OF_BIRTH_FIELD = "dateOfBirth"
UPDATED_AT_FIELD = "updatedAt"
# Letters-only usernames can never collide with this id.
READINESS_DOCUMENT_ID = "readiness-probe"
# Firestore's BatchGetDocuments has no documented cap; 100 keeps one answer small.
MAX_BATCH_SIZE = 100
MAX_BATCHES_IN_FLIGHT = 4


class FirestoreBirthdayStore:
    def __init__(
        self,
        client: AsyncClient,
        *,
        collection: str,
        deadline_seconds: float,
        readiness_timeout_seconds: float,
    ) -> None:
        self._client = client
        self._users = client.collection(collection)
        self._deadline = deadline_seconds
        self._readiness_timeout = readiness_timeout_seconds
        # Built once: retry policies are immutable and every request uses one of these two.
        self._request_retry = _retry_within(deadline_seconds)
        self._readiness_retry = _retry_within(readiness_timeout_seconds)
        self._loader: BatchedLoader[str, date] = BatchedLoader(
            self._fetch_many,
            max_batch_size=MAX_BATCH_SIZE,
            max_batches_in_flight=MAX_BATCHES_IN_FLIGHT,
        )

    async def save(self, username: str, date_of_birth: date) -> None:
        async with self._answer_within(self._deadline, "save"):
            await self._users.document(username).set(
                {
                    DATE_OF_BIRTH_FIELD: date_of_birth.isoformat(),
                    UPDATED_AT_FIELD: SERVER_TIMESTAMP,
                },
                retry=self._request_retry,
                timeout=self._deadline,
            )

    async def load(self, username: str) -> date | None:
        async with self._answer_within(self._deadline, "load"):
            return await self._loader.load(username)

    async def check(self) -> None:
        async with self._answer_within(self._readiness_timeout, "readiness check"):
            await self._users.document(READINESS_DOCUMENT_ID).get(
                retry=self._readiness_retry,
                timeout=self._readiness_timeout,
            )

    async def close(self) -> None:
        await self._loader.close()
        # AsyncClient.close() only closes an HTTP session this client never opens; the gRPC channel
        # belongs to the generated API client underneath.
        await self._client._firestore_api.transport.close()

    async def _fetch_many(self, usernames: Sequence[str]) -> Mapping[str, date]:
        references = [self._users.document(username) for username in usernames]
        found: dict[str, date] = {}
        async for snapshot in self._client.get_all(
            references,
            field_paths=[DATE_OF_BIRTH_FIELD],
            retry=self._request_retry,
            timeout=self._deadline,
        ):
            if snapshot.exists:
                found[snapshot.id] = date.fromisoformat(snapshot.get(DATE_OF_BIRTH_FIELD))
        return found

    @asynccontextmanager
    async def _answer_within(self, seconds: float, operation: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError:
            logger.warning("Firestore %s took longer than %.1f s", operation, seconds)
            raise StorageUnavailable(f"storage did not answer within {seconds:g} s; retry later") from None
        except GoogleAPIError as error:
            logger.warning("Firestore %s failed: %s", operation, error)
            raise StorageUnavailable("storage is unavailable; retry later") from None


def _retry_within(seconds: float) -> AsyncRetry:
    """Retries transient errors (UNAVAILABLE, DEADLINE_EXCEEDED...) quickly, and never past `seconds`."""
    return AsyncRetry(predicate=if_transient_error, initial=0.05, maximum=0.5, multiplier=2, timeout=seconds)
