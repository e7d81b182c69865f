"""The read coalescer: fewer Firestore round trips under load, and never a stale read."""

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from app.storage.batching import BatchedLoader

pytestmark = pytest.mark.anyio


class RecordingSource:
    """A fake key-value source that records each batch and can be held open to let reads pile up."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failure: Exception | None = None

    async def fetch_many(self, keys: Sequence[str]) -> Mapping[str, int]:
        self.batches.append(list(keys))
        snapshot = {key: self.values[key] for key in keys if key in self.values}
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return snapshot


def loader(source: RecordingSource, *, size: int = 100, in_flight: int = 1) -> BatchedLoader[str, int]:
    return BatchedLoader(source.fetch_many, max_batch_size=size, max_batches_in_flight=in_flight)


async def test_concurrent_reads_share_one_fetch() -> None:
    source = RecordingSource()
    source.values = {"a": 1, "b": 2}
    reads = loader(source)
    assert list(await asyncio.gather(reads.load("a"), reads.load("b"), reads.load("a"), reads.load("zed"))) == [
        1,
        2,
        1,
        None,
    ]
    assert source.batches == [["a", "b", "zed"]]


async def test_reads_that_arrive_during_a_fetch_wait_for_the_next_one() -> None:
    source = RecordingSource()
    source.values = {"a": 1}
    reads = loader(source)
    source.gate.clear()
    first = asyncio.create_task(reads.load("a"))
    await asyncio.sleep(0.01)
    # A write lands after the first fetch was sent: a read asked for now must see it.
    source.values["a"] = 2
    second = asyncio.create_task(reads.load("a"))
    await asyncio.sleep(0.01)
    source.gate.set()
    assert (await first, await second) == (1, 2)
    assert source.batches == [["a"], ["a"]]


async def test_batches_are_capped_and_sent_in_parallel_up_to_the_limit() -> None:
    source = RecordingSource()
    reads = loader(source, size=2, in_flight=2)
    assert await asyncio.gather(*(reads.load(key) for key in "abcde")) == [None] * 5
    assert source.batches == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_failed_fetch_fails_every_read_in_it_and_the_next_one_recovers() -> None:
    source = RecordingSource()
    source.failure = ConnectionError("down")
    reads = loader(source)
    results = await asyncio.gather(reads.load("a"), reads.load("b"), return_exceptions=True)
    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
    source.failure = None
    source.values = {"a": 1}
    assert await reads.load("a") == 1


async def test_a_reader_that_gives_up_does_not_cancel_the_others() -> None:
    source = RecordingSource()
    source.values = {"a": 1}
    source.gate.clear()
    reads = loader(source)
    impatient = asyncio.create_task(asyncio.wait_for(reads.load("a"), timeout=0.01))
    patient = asyncio.create_task(reads.load("a"))
    with pytest.raises(TimeoutError):
        await impatient
    source.gate.set()
    assert await patient == 1


async def test_close_cancels_fetches_in_flight() -> None:
    source = RecordingSource()
    source.gate.clear()
    reads = loader(source)
    pending = asyncio.create_task(reads.load("a"))
    await asyncio.sleep(0.01)
    await reads.close()
    with pytest.raises(asyncio.CancelledError):
        await pending
