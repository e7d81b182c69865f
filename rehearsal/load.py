"""`python -m rehearsal.load URL OUT`: a steady mix of GETs and PUTs to a service URL, every response recorded.

It runs as its own process, like a real client, until SIGTERM (or --limit seconds). Requests start on a fixed
schedule (--rate per second), each for a user that has no request in flight, so that "the last value
acknowledged" is well defined: a GET that answers anything but the greeting of that value (or, after a PUT
that failed, of either value) is a stale read. Every request becomes one JSON line in OUT: when it started,
method, user, status (None on a connection error), latency, the revision that answered, error, stale.
"""

import argparse
import asyncio
import contextlib
import json
import random
import signal
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp

from app.birthdays import days_until_birthday, greeting

REVISION_HEADER = "X-Rehearsal-Revision"
REQUEST_TIMEOUT_SECONDS = 5
PUT_EVERY = 4
"""Every fourth request of a user writes; the others read."""


def name_of(prefix: str, index: int) -> str:
    letters = ""
    while True:
        index, digit = divmod(index, 26)
        letters = string.ascii_lowercase[digit] + letters
        if index == 0:
            return prefix + letters


def date_of(user: int, version: int) -> date:
    return date(1970 + user % 40, 1 + version % 12, 1 + (user * 7 + version * 3) % 28)


def greetings(username: str, born: date) -> set[str]:
    """What the service may answer for this date of birth: its "today" may be a day either side of ours."""
    today = datetime.now(UTC).date()
    return {greeting(username, days_until_birthday(born, today + timedelta(days=shift))) for shift in (-1, 0, 1)}


@dataclass
class User:
    name: str
    index: int
    version: int = 0
    acknowledged: set[date] = field(default_factory=set)
    """The values a read may return: the last acknowledged one, and an attempted one whose PUT failed."""
    stored: bool = False
    """A PUT was acknowledged, so the user must exist from then on."""
    requests: int = 0
    busy: bool = False


class Load:
    def __init__(self, url: str, rate: float, users: int, out: IO[str], prefix: str) -> None:
        self.url = url.rstrip("/")
        self.rate = rate
        self.out = out
        self.users = [User(name_of(prefix, index), index) for index in range(users)]
        self._next_user = 0
        self.stopping = asyncio.Event()

    async def run(self, limit: float) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            tasks: set[asyncio.Task[None]] = set()
            started = time.monotonic()
            tick = started
            while not self.stopping.is_set() and time.monotonic() - started < limit:
                if (user := self._idle_user()) is not None:
                    task = asyncio.create_task(self._one(session, user))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    self._record({"t": time.time(), "method": None, "user": None, "error": "no idle user"})
                tick += 1 / self.rate
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), max(0.0, tick - time.monotonic()))
            if tasks:
                await asyncio.wait(tasks)

    def _idle_user(self) -> User | None:
        for _ in range(len(self.users)):
            user = self.users[self._next_user]
            self._next_user = (self._next_user + 1) % len(self.users)
            if not user.busy:
                return user
        return None

    async def _one(self, session: aiohttp.ClientSession, user: User) -> None:
        user.busy = True
        user.requests += 1
        writes = not user.acknowledged or user.requests % PUT_EVERY == 0
        record: dict[str, Any] = {"t": time.time(), "method": "PUT" if writes else "GET", "user": user.name}
        started = time.monotonic()
        try:
            if writes:
                born = date_of(user.index, user.version + 1)
                async with session.put(
                    f"{self.url}/hello/{user.name}", json={"dateOfBirth": born.isoformat()}
                ) as response:
                    await response.read()
                    self._answered(record, response)
                user.version += 1
                if response.status == 204:
                    user.acknowledged, user.stored = {born}, True
                elif response.status >= 500:
                    user.acknowledged.add(born)
            else:
                async with session.get(f"{self.url}/hello/{user.name}") as response:
                    body = await response.read()
                    self._answered(record, response)
                record["stale"] = self._stale(user, response.status, body)
        except (aiohttp.ClientError, TimeoutError) as error:
            record.update(status=None, error=f"{type(error).__name__}: {error}")
            if writes:
                user.version += 1
                user.acknowledged.add(date_of(user.index, user.version))
        finally:
            record["latency_ms"] = (time.monotonic() - started) * 1000
            user.busy = False
            self._record(record)

    @staticmethod
    def _answered(record: dict[str, Any], response: aiohttp.ClientResponse) -> None:
        record.update(status=response.status, revision=response.headers.get(REVISION_HEADER))

    @staticmethod
    def _stale(user: User, status: int, body: bytes) -> bool:
        if status == 404:
            return user.stored
        if status != 200:
            return False
        message = json.loads(body).get("message")
        return not any(message in greetings(user.name, born) for born in user.acknowledged)

    def _record(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rehearsal.load", description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--rate", type=float, default=30, help="requests started per second (default 30)")
    parser.add_argument("--users", type=int, default=60, help="distinct users (default 60)")
    parser.add_argument("--limit", type=float, default=900, help="stop after this many seconds at the latest")
    arguments = parser.parse_args(argv)
    prefix = "Load" + "".join(random.choice(string.ascii_lowercase) for _ in range(6))  # noqa: S311 (not a secret)
    with arguments.out.open("w", buffering=1) as out:
        load = Load(arguments.url, arguments.rate, arguments.users, out, prefix)

        async def run() -> None:
            loop = asyncio.get_running_loop()
            for stop in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(stop, load.stopping.set)
            await load.run(arguments.limit)

        asyncio.run(run())


if __name__ == "__main__":
    main()
