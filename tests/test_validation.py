"""The contract's input rules as the types FastAPI validates with, with hypothesis where an oracle exists:
the pattern published in /openapi.json, and the standard library's calendar."""

import re
import string
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from app.contract import DateOfBirthBody, Username, rejection
from app.errors import InvalidBody, InvalidDateOfBirth, InvalidUsername, ServiceError
from app.main import create_app
from app.settings import Settings

TODAY = date(2026, 11, 29)
USERNAMES = TypeAdapter(Username)
OPENAPI = create_app(Settings(store="memory")).openapi()


def published(parameter_or_field: str) -> str:
    """The pattern /openapi.json publishes for the username or the date of birth (an ECMA regex)."""
    if parameter_or_field == "username":
        (username,) = OPENAPI["paths"]["/hello/{username}"]["put"]["parameters"]
        return str(username["schema"]["pattern"])
    return str(OPENAPI["components"]["schemas"]["DateOfBirthBody"]["properties"]["dateOfBirth"]["pattern"])


def parse_username(raw: str) -> str:
    """What the service makes of a username: the value, or the contract's own rejection."""
    try:
        return USERNAMES.validate_python(raw)
    except ValidationError as error:
        raise _contract_error(error, loc_prefix=("path", "username")) from None


def parse_date_of_birth(raw: object, today: date) -> date:
    try:
        body = DateOfBirthBody.model_validate({"dateOfBirth": raw})
    except ValidationError as error:
        raise _contract_error(error, loc_prefix=("body",)) from None
    return body.born_before(today)


def _contract_error(error: ValidationError, loc_prefix: tuple[str, ...]) -> ServiceError:
    errors: list[dict[str, Any]] = [
        {**details, "loc": loc_prefix + tuple(details["loc"])} for details in error.errors(include_url=False)
    ]
    answer = rejection(errors)
    assert answer is not None
    return answer


@given(st.text(alphabet=string.ascii_letters, min_size=1, max_size=100))
def test_ascii_letters_are_usernames(name: str) -> None:
    assert parse_username(name) == name


@given(st.text(max_size=120))
def test_usernames_follow_the_openapi_pattern(name: str) -> None:
    # The pattern published in /openapi.json (an ECMA regex) is the oracle for the server-side rule.
    accepted_by_pattern = re.fullmatch(published("username").strip("^$"), name, flags=re.ASCII) is not None
    try:
        parse_username(name)
    except InvalidUsername:
        accepted = False
    else:
        accepted = True
    assert accepted == accepted_by_pattern


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
        expected = date.fromisoformat(text) if re.fullmatch(published("date").strip("^$"), text, re.ASCII) else None
    except ValueError:
        expected = None
    if expected is None or expected >= TODAY:
        with pytest.raises(InvalidDateOfBirth):
            parse_date_of_birth(text, TODAY)
    else:
        assert parse_date_of_birth(text, TODAY) == expected


def test_a_field_added_to_the_model_is_answered_in_its_own_name() -> None:
    """Adding an optional body field is a field of the model: its errors are not mistaken for the date's."""

    class WithNickname(DateOfBirthBody):
        nickname: str | None = Field(default=None, max_length=20)

    with pytest.raises(ValidationError) as raised:
        WithNickname.model_validate({"dateOfBirth": "1990-01-01", "nickname": "x" * 21})
    answer = _contract_error(raised.value, loc_prefix=("body",))
    assert isinstance(answer, InvalidBody)
    assert answer.detail.startswith("nickname: String should have at most 20 characters; send {")
