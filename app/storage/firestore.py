"""The Firestore adapter: one document per user, id = username, in Firestore Native mode.

It speaks to Firestore through the library's generated API client (`FirestoreAsyncClient`), for two reasons:
its channel is built here, with the reconnect backoff bounded (gRPC's default grows to 120 s, so a service
that saw Firestore go away for 40 s went on answering 503 for 20 s after it came back); and concurrent calls
share one round trip, reads as one BatchGetDocuments and writes as one Commit, whose answers are read from the
raw protobuf messages rather than converted into document snapshots one by one.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import date

import grpc
from google.api_core.exceptions import GoogleAPIError
from google.api_core.retry import if_transient_error
from google.api_core.retry_async import AsyncRetry
from google.cloud.firestore_v1.services.firestore import FirestoreAsyncClient
from google.cloud.firestore_v1.services.firestore.transports import FirestoreGrpcAsyncIOTransport
from google.cloud.firestore_v1.types import (
    BatchGetDocumentsRequest,
    BatchGetDocumentsResponse,
    CommitRequest,
    Document,
    DocumentMask,
    DocumentTransform,
    Value,
    Write,
)

from app.errors import StorageUnavailable
from app.storage.batching import Coalescer

logger = logging.getLogger(__name__)

DATE_OF_BIRTH_FIELD = "dateOfBirth"
UPDATED_AT_FIELD = "updatedAt"
# Letters-only usernames can never collide with this id.
READINESS_DOCUMENT_ID = "readiness-probe"
# Firestore's BatchGetDocuments has no documented cap; 100 keeps one answer small.
MAX_READ_BATCH_SIZE = 100
MAX_READ_BATCHES_IN_FLIGHT = 4
# A Commit holds at most 500 writes. One commit at a time: batches commit in the order their PUTs arrived.
MAX_WRITE_BATCH_SIZE = 500
MAX_WRITE_BATCHES_IN_FLIGHT = 1
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    # A channel that lost its server tries again within a second, not after up to two minutes. The minimum
    # is left alone: gRPC also uses it as the time a connection attempt may take (20 s), and a low one fails
    # every handshake slower than itself.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # What the library's own client sets: keepalive pings, and no cap on message sizes.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]
_SET_TO_SERVER_TIME = DocumentTransform.FieldTransform(
    field_path=UPDATED_AT_FIELD, set_to_server_value=DocumentTransform.FieldTransform.ServerValue.REQUEST_TIME
)


def firestore_api(emulator_host: str | None) -> FirestoreAsyncClient:
    """The generated client on a channel of our own: to the emulator when given one, else to Firestore with the
    ambient credentials (on Cloud Run, the service account's)."""
    if emulator_host:
        channel = grpc.aio.insecure_channel(emulator_host, options=CHANNEL_OPTIONS)
        return FirestoreAsyncClient(transport=FirestoreGrpcAsyncIOTransport(host=emulator_host, channel=channel))
    channel = FirestoreGrpcAsyncIOTransport.create_channel(
        f"{FirestoreGrpcAsyncIOTransport.DEFAULT_HOST}:443", options=CHANNEL_OPTIONS
    )
    return FirestoreAsyncClient(transport=FirestoreGrpcAsyncIOTransport(channel=channel))


class FirestoreBirthdayStore:
    def __init__(
        self,
        api: FirestoreAsyncClient,
        *,
        project: str,
        database: str,
        collection: str,
        deadline_seconds: float,
        readiness_timeout_seconds: float,
        emulator: bool = False,
    ) -> None:
        self._api = api
        self._database = f"projects/{project}/databases/{database}"
        self._documents = f"{self._database}/documents/{collection}/"
        # What the library's own client sends with every call; the emulator wants to be told it may bypass rules.
        self._metadata = (("google-cloud-resource-prefix", self._database),) + (
            (("authorization", "Bearer owner"),) if emulator else ()
        )
        self._deadline = deadline_seconds
        self._readiness_timeout = readiness_timeout_seconds
        # Wrapped once: retry policies are immutable, and every call goes through one of these three.
        self._get_within_deadline = _retry_within(deadline_seconds)(self._get_many)
        self._get_within_readiness_timeout = _retry_within(readiness_timeout_seconds)(self._get_many)
        self._commit_within_deadline = _retry_within(deadline_seconds)(self._api.commit)
        self._reads: Coalescer[str, None, date] = Coalescer(
            self._read_batch, max_batch_size=MAX_READ_BATCH_SIZE, max_batches_in_flight=MAX_READ_BATCHES_IN_FLIGHT
        )
        self._writes: Coalescer[str, str, None] = Coalescer(
            self._commit_batch, max_batch_size=MAX_WRITE_BATCH_SIZE, max_batches_in_flight=MAX_WRITE_BATCHES_IN_FLIGHT
        )

    async def save(self, username: str, date_of_birth: date) -> None:
        async with self._answer_within(self._deadline, "save"):
            await self._writes.submit(username, date_of_birth.isoformat())

    async def load(self, username: str) -> date | None:
        async with self._answer_within(self._deadline, "load"):
            return await self._reads.submit(username, None)

    async def check(self) -> None:
        async with self._answer_within(self._readiness_timeout, "readiness check"):
            await self._get_within_readiness_timeout([READINESS_DOCUMENT_ID], self._readiness_timeout)

    async def close(self) -> None:
        await self._reads.close()
        await self._writes.close()
        await self._api.transport.close()  # type: ignore[no-untyped-call] # generated code, unannotated

    async def _read_batch(self, usernames: Mapping[str, None]) -> Mapping[str, date]:
        return await self._get_within_deadline(list(usernames), self._deadline)

    async def _get_many(self, usernames: list[str], rpc_timeout: float) -> dict[str, date]:
        request = BatchGetDocumentsRequest(
            database=self._database,
            documents=[self._documents + username for username in usernames],
            mask=DocumentMask(field_paths=[DATE_OF_BIRTH_FIELD]),
        )
        found: dict[str, date] = {}
        stream = await self._api.batch_get_documents(request, retry=None, timeout=rpc_timeout, metadata=self._metadata)
        async for response in stream:
            answer = BatchGetDocumentsResponse.pb(response)
            if answer.HasField("found"):
                username = answer.found.name.rpartition("/")[2]
                found[username] = date.fromisoformat(answer.found.fields[DATE_OF_BIRTH_FIELD].string_value)
        return found

    async def _commit_batch(self, dates_of_birth: Mapping[str, str]) -> Mapping[str, None]:
        request = CommitRequest(
            database=self._database,
            writes=[
                Write(
                    update=Document(
                        name=self._documents + username,
                        fields={DATE_OF_BIRTH_FIELD: Value(string_value=date_of_birth)},
                    ),
                    update_transforms=[_SET_TO_SERVER_TIME],
                )
                for username, date_of_birth in dates_of_birth.items()
            ],
        )
        # Each write replaces a whole document, so sending the same commit twice leaves the same documents.
        await self._commit_within_deadline(request, retry=None, timeout=self._deadline, metadata=self._metadata)
        return {}

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
