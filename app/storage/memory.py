"""A store that lives in the process: for tests, and for `make run` on a machine without gcloud."""

from datetime import date


class MemoryBirthdayStore:
    def __init__(self) -> None:
        self._dates: dict[str, date] = {}

    async def save(self, username: str, date_of_birth: date) -> None:
        self._dates[username] = date_of_birth

    async def load(self, username: str) -> date | None:
        return self._dates.get(username)

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        self._dates.clear()
