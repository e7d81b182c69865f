"""The storage port: all that the HTTP layer knows about where dates of birth live."""

from datetime import date
from typing import Protocol


class BirthdayStore(Protocol):
    """Adapters raise app.errors.StorageUnavailable, and nothing else, when storage cannot answer in time."""

    async def save(self, username: str, date_of_birth: date) -> None:
        """Durably stores (or replaces) the date of birth before returning."""

    async def load(self, username: str) -> date | None:
        """The stored date of birth, or None for an unknown user; sees every save that returned before it was called."""

    async def check(self) -> None:
        """Returns when storage answers a trivial read; raises StorageUnavailable otherwise."""

    async def close(self) -> None:
        """Releases connections; called once, at shutdown."""
