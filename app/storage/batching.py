"""Coalesces concurrent calls into batches: reads into one batched fetch, writes into one commit.

A call only ever joins a batch that has not been sent yet, so every call is sent after it was made: a read
that starts after a write has returned sees that write. Within a batch a key appears once; a later call for
the same key replaces the earlier one's value (for writes: the later PUT wins) and both wait for the batch.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any


class Coalescer[K, V, R]:
    def __init__(
        self,
        run_batch: Callable[[Mapping[K, V]], Awaitable[Mapping[K, R]]],
        *,
        max_batch_size: int,
        max_batches_in_flight: int,
    ) -> None:
        """`run_batch` gets each key's latest value and answers with a result for some of the keys (None for
        the others); when it raises, every call in the batch raises the same error."""
        self._run_batch = run_batch
        self._max_batch_size = max_batch_size
        self._max_batches_in_flight = max_batches_in_flight
        self._waiting: dict[K, tuple[V, asyncio.Future[R | None]]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._flush_scheduled = False

    async def submit(self, key: K, value: V) -> R | None:
        waiting = self._waiting.get(key)
        if waiting is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_mark_exception_retrieved)
            self._schedule_flush()
        else:
            future = waiting[1]
        self._waiting[key] = (value, future)
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
            task = asyncio.create_task(self._run(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._on_batch_done)

    def _on_batch_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._waiting:
            self._schedule_flush()

    async def _run(self, batch: dict[K, tuple[V, asyncio.Future[R | None]]]) -> None:
        try:
            results = await self._run_batch({key: value for key, (value, _) in batch.items()})
        except asyncio.CancelledError:
            for _, future in batch.values():
                future.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - every waiter gets the failure, whatever it is
            for _, future in batch.values():
                if not future.done():
                    future.set_exception(error)
            return
        for key, (_, future) in batch.items():
            if not future.done():
                future.set_result(results.get(key))


def _mark_exception_retrieved(future: asyncio.Future[Any]) -> None:
    # Every waiter may have given up already; reading the exception keeps asyncio from reporting it as lost.
    if not future.cancelled():
        future.exception()
