"""When is the next birthday, and how do we say so. Pure: no I/O, no clock, no framework."""

from datetime import date

FEBRUARY = 2
LEAP_DAY = 29


def birthday_in_year(date_of_birth: date, year: int) -> date:
    """The day `year` celebrates a birthday; people born on 29 February celebrate on 28 February in common years."""
    try:
        return date_of_birth.replace(year=year)
    except ValueError:
        # Only 29 February has no counterpart in some years.
        return date(year, FEBRUARY, LEAP_DAY - 1)


def days_until_birthday(date_of_birth: date, today: date) -> int:
    """Whole days from `today` to the next birthday on or after it: 0 when the birthday is today."""
    this_year = birthday_in_year(date_of_birth, today.year)
    if this_year >= today:
        return (this_year - today).days
    return (birthday_in_year(date_of_birth, today.year + 1) - today).days


def greeting(username: str, days_left: int) -> str:
    if days_left == 0:
        return f"Hello, {username}! Happy birthday!"
    unit = "day" if days_left == 1 else "days"
    return f"Hello, {username}! Your birthday is in {days_left} {unit}"
