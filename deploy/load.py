"""The rollout's own synthetic load, as Flagger's load tester gives a quiet service something to judge.

While the canary runs, one thread per revision sends requests to that revision's tag URL at a fixed rate:
PUTs and GETs on a few usernames made fresh for this rollout (the API is public, so a fixed name could have
been written by anyone). Requests are sequential per thread, so the load never exceeds its rate and never
piles up on a slow revision. Each request's time is kept, so the gates can log synthetic and real requests apart.
"""

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Protocol

from deploy.client import fresh_username, hello_path, request

USERS_PER_TARGET = 8
"""Each rollout leaves this many synthetic users per revision in the database: the API has no DELETE."""


class Load(Protocol):
    def start(self, targets: Mapping[str, str]) -> None:
        """Start sending to each revision's URL (revision name -> base URL)."""

    def stop(self) -> None: ...

    def sent(self, revision: str, start: datetime, end: datetime) -> int:
        """How many synthetic requests were sent to the revision in [start, end)."""


class SyntheticLoad:
    def __init__(
        self, rate: float, timeout: float = 5, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.rate = rate
        self._timeout = timeout
        self._now = now
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sent: dict[str, list[tuple[datetime, int]]] = {}
        self._lock = threading.Lock()

    def start(self, targets: Mapping[str, str]) -> None:
        if self.rate <= 0:
            return
        for revision, url in targets.items():
            self._sent.setdefault(revision, [])
            thread = threading.Thread(target=self._drive, args=(revision, url), name=f"load {revision}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """No new request starts; one in flight finishes within its timeout, on a daemon thread."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=1)
        self._threads.clear()

    def sent(self, revision: str, start: datetime, end: datetime) -> int:
        with self._lock:
            return sum(1 for moment, _ in self._sent.get(revision, []) if start <= moment < end)

    def statuses(self, revision: str) -> list[int]:
        with self._lock:
            return [status for _, status in self._sent.get(revision, [])]

    def _drive(self, revision: str, url: str) -> None:
        users = [fresh_username("Load") for _ in range(USERS_PER_TARGET)]
        interval = 1 / self.rate
        next_at = time.monotonic()
        for count in itertools.count():
            if self._stopping.wait(max(0.0, next_at - time.monotonic())):
                return
            next_at = max(next_at + interval, time.monotonic())
            user = users[count // 2 % len(users)]
            # Odd requests read back what the even one before wrote: a GET always finds its user.
            if count % 2 == 0:
                method, body = "PUT", {"dateOfBirth": date(1990, 1 + count % 12, 1 + count % 28).isoformat()}
            else:
                method, body = "GET", None
            sent_at = self._now()
            try:
                status = request(url, method, hello_path(user), body, self._timeout).status
            except (OSError, ValueError):
                status = 0
            with self._lock:
                self._sent[revision].append((sent_at, status))
