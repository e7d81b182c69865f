"""Where "today" comes from. Injected into the app so that tests pick the date instead of patching time."""

from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def today(self) -> date: ...


class ZoneClock:
    """The calendar date now in one time zone."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone

    def today(self) -> date:
        return datetime.now(self._zone).date()
