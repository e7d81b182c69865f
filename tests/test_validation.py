"""The contract's input rules as pure functions, with hypothesis where the standard library is an oracle."""

import re
import string
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import InvalidDateOfBirth, InvalidUsername
from app.validation import DATE_PATTERN, USERNAME_PATTERN, parse_date_of_birth, parse_username

TODAY = date(2026, 11, 29)


@given(st.text(alphabet=string.ascii_letters, min_size=1, max_size=100))
def test_ascii_letters_are_usernames(name: str) -> None:
    assert parse_username(name) == name


@given(st.text(max_size=120))
def test_usernames_follow_the_openapi_pattern(name: str) -> None:
    # The pattern published in /openapi.json (an ECMA regex) is the oracle for the server-side rule.
    published = re.fullmatch(USERNAME_PATTERN.strip("^$"), name, flags=re.ASCII) is not None
    try:
        parse_username(name)
    except InvalidUsername:
        accepted = False
    else:
        accepted = True
    assert accepted == published


# Long s and the Kelvin sign match [A-Za-z] under re.IGNORECASE; they must not pass here.
@pytest.mark.parametrize("name", ["", "A" * 101, "Jo hn", "John\n", "J\u00f6hn", "John1", "\u017f", "\u212a"])
def test_non_usernames(name: str) -> None:
    with pytest.raises(InvalidUsername, match="ASCII letters"):
        parse_username(name)


before_today = st.dates(max_value=TODAY - timedelta(days=1))


@given(before_today)
def test_every_past_day_round_trips(day: date) -> None:
    assert parse_date_of_birth(day.isoformat(), TODAY) == day


@given(st.dates(min_value=TODAY))
def test_today_and_later_are_rejected(day: date) -> None:
    with pytest.raises(InvalidDateOfBirth, match="before today"):
        parse_date_of_birth(day.isoformat(), TODAY)


@given(st.text(max_size=12))
def test_strings_that_are_not_iso_dates_are_rejected(text: str) -> None:
    try:
        expected = date.fromisoformat(text) if re.fullmatch(DATE_PATTERN.strip("^$"), text, re.ASCII) else None
    except ValueError:
        expected = None
    if expected is None or expected >= TODAY:
        with pytest.raises(InvalidDateOfBirth):
            parse_date_of_birth(text, TODAY)
    else:
        assert parse_date_of_birth(text, TODAY) == expected
