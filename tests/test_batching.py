"""The coalescer: fewer Firestore round trips under load, never a stale read, and writes in request order."""

import asyncio
from collections.abc import Mapping

import pytest

from app.storage.batching import Coalescer

pytestmark = pytest.mark.anyio


class RecordingSource:
    """A fake key-value store that records each batch and can be held open to let calls pile up."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.batches: list[dict[str, int | None]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failure: Exception | None = None

    async def read(self, keys: Mapping[str, None]) -> Mapping[str, int]:
        self.batches.append(dict(keys))
        snapshot = {key: self.values[key] for key in keys if key in self.values}
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return snapshot

    async def write(self, values: Mapping[str, int]) -> Mapping[str, None]:
        self.batches.append(dict(values))
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        self.values.update(values)
        return {}


def reader(source: RecordingSource, *, size: int = 100, in_flight: int = 1) -> Coalescer[str, None, int]:
    return Coalescer(source.read, max_batch_size=size, max_batches_in_flight=in_flight)


def writer(source: RecordingSource, *, size: int = 100, in_flight: int = 1) -> Coalescer[str, int, None]:
    return Coalescer(source.write, max_batch_size=size, max_batches_in_flight=in_flight)


async def test_concurrent_reads_share_one_fetch() -> None:
    source = RecordingSource()
    source.values = {"a": 1, "b": 2}
    reads = reader(source)
    results = await asyncio.gather(*(reads.submit(key, None) for key in ("a", "b", "a", "zed")))
    assert results == [1, 2, 1, None]
    assert source.batches == [{"a": None, "b": None, "zed": None}]


async def test_reads_that_arrive_during_a_fetch_wait_for_the_next_one() -> None:
    source = RecordingSource()
    source.values = {"a": 1}
    reads = reader(source)
    source.gate.clear()
    first = asyncio.create_task(reads.submit("a", None))
    await asyncio.sleep(0.01)
    # A write lands after the first fetch was sent: a read asked for now must see it.
    source.values["a"] = 2
    second = asyncio.create_task(reads.submit("a", None))
    await asyncio.sleep(0.01)
    source.gate.set()
    assert (await first, await second) == (1, 2)
    assert len(source.batches) == 2


async def test_batches_are_capped_and_sent_in_parallel_up_to_the_limit() -> None:
    source = RecordingSource()
    reads = reader(source, size=2, in_flight=2)
    assert await asyncio.gather(*(reads.submit(key, None) for key in "abcde")) == [None] * 5
    assert [list(batch) for batch in source.batches] == [["a", "b"], ["c", "d"], ["e"]]


async def test_concurrent_writes_share_one_commit() -> None:
    source = RecordingSource()
    writes = writer(source)
    await asyncio.gather(*(writes.submit(key, value) for value, key in enumerate("abc")))
    assert source.batches == [{"a": 0, "b": 1, "c": 2}]
    assert source.values == {"a": 0, "b": 1, "c": 2}


async def test_two_writes_of_one_key_in_a_batch_keep_request_order() -> None:
    source = RecordingSource()
    writes = writer(source)
    results = await asyncio.gather(writes.submit("a", 1), writes.submit("b", 5), writes.submit("a", 2))
    assert list(results) == [None, None, None], "each caller hears back only once the batch is committed"
    assert source.batches == [{"a": 2, "b": 5}], "one write per key: the later one"
    assert source.values["a"] == 2


async def test_writes_made_during_a_commit_go_into_the_next_one_in_order() -> None:
    source = RecordingSource()
    writes = writer(source)
    source.gate.clear()
    first = asyncio.create_task(writes.submit("a", 1))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(writes.submit("a", 2))
    third = asyncio.create_task(writes.submit("b", 3))
    await asyncio.sleep(0.01)
    assert source.batches == [{"a": 1}], "one commit at a time"
    source.gate.set()
    await asyncio.gather(first, second, third)
    assert source.batches == [{"a": 1}, {"a": 2, "b": 3}]
    assert source.values == {"a": 2, "b": 3}


async def test_a_failed_batch_fails_every_call_in_it_with_the_same_error_and_the_next_one_recovers() -> None:
    source = RecordingSource()
    source.failure = ConnectionError("down")
    writes = writer(source)
    results = await asyncio.gather(writes.submit("a", 1), writes.submit("b", 2), return_exceptions=True)
    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
    assert results[0] is results[1]
    source.failure = None
    await writes.submit("a", 3)
    assert source.values == {"a": 3}


async def test_a_caller_that_gives_up_does_not_cancel_the_others() -> None:
    source = RecordingSource()
    source.values = {"a": 1}
    source.gate.clear()
    reads = reader(source)
    impatient = asyncio.create_task(asyncio.wait_for(reads.submit("a", None), timeout=0.01))
    patient = asyncio.create_task(reads.submit("a", None))
    with pytest.raises(TimeoutError):
        await impatient
    source.gate.set()
    assert await patient == 1


async def test_close_cancels_batches_in_flight() -> None:
    source = RecordingSource()
    source.gate.clear()
    reads = reader(source)
    pending = asyncio.create_task(reads.submit("a", None))
    await asyncio.sleep(0.01)
    await reads.close()
    with pytest.raises(asyncio.CancelledError):
        await pending
