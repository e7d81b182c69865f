"""Coalesces concurrent reads into batched fetches.

A read only ever joins a batch that has not been sent yet, so every read is issued after it was asked for:
a read that starts after a write has returned still sees that write.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any


class BatchedLoader[K, V]:
    def __init__(
        self,
        fetch_many: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]],
        *,
        max_batch_size: int,
        max_batches_in_flight: int,
    ) -> None:
        self._fetch_many = fetch_many
        self._max_batch_size = max_batch_size
        self._max_batches_in_flight = max_batches_in_flight
        self._waiting: dict[K, asyncio.Future[V | None]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._flush_scheduled = False

    async def load(self, key: K) -> V | None:
        future = self._waiting.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_mark_exception_retrieved)
            self._waiting[key] = future
            self._schedule_flush()
        # One caller giving up (its deadline passed) must not cancel the answer the others share.
        return await asyncio.shield(future)

    async def close(self) -> None:
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _schedule_flush(self) -> None:
        # Deferred by one loop iteration so that every request parsed in this iteration joins the same batch.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._waiting and len(self._in_flight) < self._max_batches_in_flight:
            batch = dict(list(self._waiting.items())[: self._max_batch_size])
            for key in batch:
                del self._waiting[key]
            task = asyncio.create_task(self._fetch(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._on_batch_done)

    def _on_batch_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._waiting:
            self._schedule_flush()

    async def _fetch(self, batch: dict[K, asyncio.Future[V | None]]) -> None:
        try:
            found = await self._fetch_many(list(batch))
        except asyncio.CancelledError:
            for future in batch.values():
                future.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - every waiter gets the failure, whatever it is
            for future in batch.values():
                if not future.done():
                    future.set_exception(error)
            return
        for key, future in batch.items():
            if not future.done():
                future.set_result(found.get(key))


def _mark_exception_retrieved(future: asyncio.Future[Any]) -> None:
    # Every waiter may have given up already; reading the exception keeps asyncio from reporting it as lost.
    if not future.cancelled():
        future.exception()
