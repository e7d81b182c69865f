"""Read ceilings `make bench` compares GETs with: reads without any HTTP in between.

`python -m dev.ceiling KIND SECONDS READERS USERNAME...` runs READERS concurrent loops, each reading one stored
user's date of birth after another, and prints reads per second. KIND is
- `client`: the library's AsyncClient, one document.get per read: what the async Firestore client alone reads;
- `store`: the service's own store (app/storage), which batches concurrent reads as it does under the service:
  the most the service could answer if HTTP cost nothing.
It runs as its own process, against the emulator in FIRESTORE_EMULATOR_HOST and the project and collection in
BIRTHDAY_PROJECT_ID and BIRTHDAY_COLLECTION, as the servers do.
"""

import asyncio
import itertools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import date

from google.cloud.firestore import AsyncClient

from app.settings import Settings
from app.storage.factory import open_store


async def reads_per_second(
    read: Callable[[str], Awaitable[object]], seconds: float, readers: int, usernames: list[str]
) -> float:
    names = itertools.cycle(usernames)
    done = 0
    stop = time.monotonic() + seconds

    async def read_until_stop() -> None:
        nonlocal done
        while time.monotonic() < stop:
            name = next(names)
            if await read(name) is None:
                raise RuntimeError(f"{name} is not stored")
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(read_until_stop() for _ in range(readers)))
    return done / (time.monotonic() - started)


async def client_ceiling(seconds: float, readers: int, usernames: list[str]) -> float:
    users = AsyncClient(project=os.environ["BIRTHDAY_PROJECT_ID"]).collection(os.environ["BIRTHDAY_COLLECTION"])

    async def read(name: str) -> object:
        return (await users.document(name).get(field_paths=["dateOfBirth"])).get("dateOfBirth")

    return await reads_per_second(read, seconds, readers, usernames)


async def store_ceiling(seconds: float, readers: int, usernames: list[str]) -> float:
    store = open_store(Settings())

    async def read(name: str) -> date | None:
        return await store.load(name)

    try:
        return await reads_per_second(read, seconds, readers, usernames)
    finally:
        await store.close()


def main() -> int:
    kind, seconds, readers, *usernames = sys.argv[1:]
    ceiling = {"client": client_ceiling, "store": store_ceiling}[kind]
    print(f"{asyncio.run(ceiling(float(seconds), int(readers), usernames)):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
