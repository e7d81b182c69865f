"""The date logic, against hand-picked days and against a brute-force oracle that walks the calendar."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.birthdays import birthday_in_year, days_until_birthday, greeting


def days_by_walking(date_of_birth: date, today: date) -> int:
    """The oracle: step one day at a time until a day is a birthday, by the plainest reading of the rule."""
    day = today
    while True:
        born_on_leap_day = (date_of_birth.month, date_of_birth.day) == (2, 29)
        is_leap_year = day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0)
        if (day.month, day.day) == (date_of_birth.month, date_of_birth.day):
            return (day - today).days
        if born_on_leap_day and not is_leap_year and (day.month, day.day) == (2, 28):
            return (day - today).days
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("date_of_birth", "today", "expected"),
    [
        pytest.param(date(1990, 11, 29), date(2026, 11, 29), 0, id="today"),
        pytest.param(date(1990, 11, 30), date(2026, 11, 29), 1, id="tomorrow"),
        pytest.param(date(1990, 11, 28), date(2026, 11, 29), 364, id="yesterday"),
        pytest.param(date(1990, 1, 1), date(2026, 12, 31), 1, id="new year across the year end"),
        pytest.param(date(1990, 12, 31), date(2027, 1, 1), 364, id="new year's eve just passed"),
        pytest.param(date(1990, 3, 1), date(2028, 2, 28), 2, id="leap year: 28 Feb to 1 Mar is two days"),
        pytest.param(date(1990, 3, 1), date(2027, 2, 28), 1, id="common year: 28 Feb to 1 Mar is one day"),
        pytest.param(date(1990, 11, 29), date(2027, 11, 30), 365, id="a full common year ahead"),
        pytest.param(date(1990, 11, 29), date(2027, 11, 28), 1, id="before a leap day year"),
    ],
)
def test_days_until_birthday(date_of_birth: date, today: date, expected: int) -> None:
    assert days_until_birthday(date_of_birth, today) == expected


LEAP_DAY_BIRTH = date(2000, 2, 29)


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        # 2027, 2029 and 2030 are common years: the birthday is 28 February.
        pytest.param(date(2027, 2, 27), 1, id="2027 day before"),
        pytest.param(date(2027, 2, 28), 0, id="2027 celebrates on 28 Feb"),
        pytest.param(date(2027, 3, 1), 365, id="2027 day after: next is 29 Feb 2028"),
        # 2028 is a leap year: the birthday is 29 February.
        pytest.param(date(2028, 2, 28), 1, id="2028 28 Feb is the day before"),
        pytest.param(date(2028, 2, 29), 0, id="2028 celebrates on 29 Feb"),
        pytest.param(date(2028, 3, 1), 364, id="2028 day after: next is 28 Feb 2029"),
        pytest.param(date(2029, 2, 28), 0, id="2029 celebrates on 28 Feb"),
        pytest.param(date(2029, 3, 1), 364, id="2029 day after"),
        pytest.param(date(2030, 2, 28), 0, id="2030 celebrates on 28 Feb"),
        pytest.param(date(2031, 3, 1), 365, id="2031 day after: 2032 is a leap year"),
        pytest.param(date(2100, 2, 28), 0, id="2100 is a common year though divisible by 4"),
        pytest.param(date(2400, 2, 28), 1, id="2400 is a leap year"),
    ],
)
def test_leap_day_birthday_over_a_full_cycle(today: date, expected: int) -> None:
    assert days_until_birthday(LEAP_DAY_BIRTH, today) == expected


def test_leap_day_birthday_falls_once_every_year() -> None:
    day, celebrations = date(2027, 1, 1), []
    while day < date(2031, 1, 1):
        if days_until_birthday(LEAP_DAY_BIRTH, day) == 0:
            celebrations.append(day)
        day += timedelta(days=1)
    assert celebrations == [date(2027, 2, 28), date(2028, 2, 29), date(2029, 2, 28), date(2030, 2, 28)]


def test_birthday_in_year_keeps_ordinary_days() -> None:
    assert birthday_in_year(date(1990, 7, 14), 2031) == date(2031, 7, 14)


# Years up to 9998 so that "next year" always exists; the service itself never sees a today near 9999.
days = st.dates(min_value=date(1, 1, 1), max_value=date(9998, 12, 31))


@given(date_of_birth=days, today=days)
def test_matches_walking_the_calendar(date_of_birth: date, today: date) -> None:
    assert days_until_birthday(date_of_birth, today) == days_by_walking(date_of_birth, today)


@given(date_of_birth=days, today=days)
def test_is_never_more_than_a_year_away(date_of_birth: date, today: date) -> None:
    assert 0 <= days_until_birthday(date_of_birth, today) <= 365


@given(date_of_birth=days, today=days)
def test_days_left_lands_on_the_birthday(date_of_birth: date, today: date) -> None:
    birthday = today + timedelta(days=days_until_birthday(date_of_birth, today))
    assert birthday == birthday_in_year(date_of_birth, birthday.year)


@pytest.mark.parametrize(
    ("days_left", "message"),
    [
        (0, "Hello, John! Happy birthday!"),
        (1, "Hello, John! Your birthday is in 1 day"),
        (2, "Hello, John! Your birthday is in 2 days"),
        (365, "Hello, John! Your birthday is in 365 days"),
    ],
)
def test_greeting(days_left: int, message: str) -> None:
    assert greeting("John", days_left) == message
