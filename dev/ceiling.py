"""The direct-client ceiling `make bench` compares GETs with: the async Firestore client alone, no HTTP.

`python -m dev.ceiling SECONDS READERS USERNAME...` runs READERS concurrent loops, each reading one stored
user's date of birth after another with the library's AsyncClient (document.get), and prints reads per second.
It runs as its own process, against the emulator in FIRESTORE_EMULATOR_HOST and the project and collection in
BIRTHDAY_PROJECT_ID and BIRTHDAY_COLLECTION, as the servers do.
"""

import asyncio
import itertools
import os
import sys
import time

from google.cloud.firestore import AsyncClient


async def reads_per_second(seconds: float, readers: int, usernames: list[str]) -> float:
    client = AsyncClient(project=os.environ["BIRTHDAY_PROJECT_ID"])
    users = client.collection(os.environ["BIRTHDAY_COLLECTION"])
    names = itertools.cycle(usernames)
    done = 0
    stop = time.monotonic() + seconds

    async def read_until_stop() -> None:
        nonlocal done
        while time.monotonic() < stop:
            snapshot = await users.document(next(names)).get(field_paths=["dateOfBirth"])
            if snapshot.get("dateOfBirth") is None:
                raise RuntimeError(f"{snapshot.id} is not stored")
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(read_until_stop() for _ in range(readers)))
    return done / (time.monotonic() - started)


def main() -> int:
    seconds, readers, *usernames = sys.argv[1:]
    print(f"{asyncio.run(reads_per_second(float(seconds), int(readers), usernames)):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
