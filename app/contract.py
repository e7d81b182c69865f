"""The public contract as types: the username in the path, the PUT body and the greeting.

FastAPI validates requests against these and generates /openapi.json from them. `rejection` turns the
errors it finds into the contract's own answers, so that a client never sees FastAPI's 422.
"""

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from app.errors import InvalidBody, InvalidDateOfBirth, InvalidUsername, ServiceError

USERNAME_MAX_LENGTH = 100
# ASCII only on purpose: str.isalpha() and \w accept any Unicode letter, and \d any Unicode digit. pydantic
# checks patterns with Rust's regex crate, where "$" is the end of the text, never before a final newline.
USERNAME_PATTERN = rf"^[A-Za-z]{{1,{USERNAME_MAX_LENGTH}}}$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DATE_EXAMPLE = "1990-01-31"

Username = Annotated[
    str,
    Path(
        description=f"1 to {USERNAME_MAX_LENGTH} ASCII letters; case-sensitive.",
        pattern=USERNAME_PATTERN,
        min_length=1,
        max_length=USERNAME_MAX_LENGTH,
        examples=["John"],
    ),
]


class DateOfBirthBody(BaseModel):
    """The body of PUT /hello/<username>."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date_of_birth: Annotated[str, StringConstraints(pattern=DATE_PATTERN)] = Field(
        alias="dateOfBirth",
        title="Date of birth",
        description="A real calendar day strictly before today, as YYYY-MM-DD.",
        examples=[DATE_EXAMPLE],
        json_schema_extra={"format": "date"},
    )

    @field_validator("date_of_birth")
    @classmethod
    def _a_real_calendar_day(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError:
            message = "dateOfBirth {value} is not a real calendar day"
            raise PydanticCustomError("calendar_day", message, {"value": value}) from None
        return value

    def born_before(self, today: date) -> date:
        """The date of birth; "before today" is checked here because today is the app's clock, not the model's."""
        born = date.fromisoformat(self.date_of_birth)
        if born >= today:
            raise InvalidDateOfBirth(
                f"dateOfBirth must be a date before today ({today.isoformat()}); got {self.date_of_birth}"
            )
        return born


class Greeting(BaseModel):
    message: str = Field(
        examples=[
            "Hello, John! Your birthday is in 5 days",
            "Hello, John! Happy birthday!",
        ]
    )


DATE_OF_BIRTH_KEY = DateOfBirthBody.model_fields["date_of_birth"].alias or "date_of_birth"
HOW_TO = f'send {{"{DATE_OF_BIRTH_KEY}": "YYYY-MM-DD"}}, e.g. {{"{DATE_OF_BIRTH_KEY}": "{DATE_EXAMPLE}"}}'
# Reasons a body is not a JSON document at all (request_body.py reports them as JSON decode errors).
NO_BODY = "the request has no body"
NOT_JSON = "the body is not valid JSON"
REPEATED_KEY = "the body repeats a field name"


def rejection(errors: Sequence[Mapping[str, Any]]) -> ServiceError | None:
    """The contract's answer to what FastAPI found wrong: the first problem by where it is, in the contract's words.

    The username comes first, then the body as a whole, then its field names, then the date's value. None for
    a place the contract does not define (a query parameter, say): no route of the service has one.
    """
    first = min(errors, key=_precedence)
    place = first["loc"][0]
    if place == "path":
        return InvalidUsername(
            f"username in the path must be 1 to {USERNAME_MAX_LENGTH} ASCII letters (A-Z, a-z) and nothing else; "
            f"got {_describe_username(str(first['input']))}"
        )
    if place == "body":
        return _body_rejection(first, errors)
    return None


def _body_rejection(first: Mapping[str, Any], errors: Sequence[Mapping[str, Any]]) -> ServiceError:
    if first["type"] == "json_invalid":
        reason = str(first["ctx"]["error"])
    elif tuple(first["loc"]) == ("body",):
        reason = NO_BODY if first["type"] == "missing" else "the body must be a JSON object"
    elif first["type"] == "extra_forbidden":
        unknown = sorted(str(error["loc"][-1]) for error in errors if error["type"] == "extra_forbidden")
        reason = f"unknown field(s) {', '.join(map(json.dumps, unknown))}"
    elif first["type"] == "missing":
        reason = f"the field {first['loc'][-1]} is required"
    elif first["loc"][-1] == DATE_OF_BIRTH_KEY:
        return InvalidDateOfBirth(_date_of_birth_detail(first))
    else:
        # A field added to the model later answers with pydantic's own words until it is given its own.
        reason = f"{first['loc'][-1]}: {first['msg']}"
    return InvalidBody(f"{reason}; {HOW_TO}")


def _precedence(error: Mapping[str, Any]) -> int:
    location = tuple(error["loc"])
    if location[0] != "body":
        return 0
    if len(location) == 1 or error["type"] == "json_invalid":
        return 1
    if error["type"] == "extra_forbidden":
        return 2
    return 3 if error["type"] == "missing" else 4


def _date_of_birth_detail(error: Mapping[str, Any]) -> str:
    if error["type"] == "string_type":
        return (
            f"{DATE_OF_BIRTH_KEY} must be a string in YYYY-MM-DD format, e.g. {DATE_EXAMPLE}; "
            f"got {_json_type(error['input'])}"
        )
    if error["type"] == "string_pattern_mismatch":
        return (
            f"{DATE_OF_BIRTH_KEY} must be in YYYY-MM-DD format with a four-digit year and two-digit month and day, "
            f"e.g. {DATE_EXAMPLE}"
        )
    return str(error["msg"])


def _describe_username(raw: str) -> str:
    if len(raw) > USERNAME_MAX_LENGTH:
        return f"{len(raw)} characters"
    return "a character that is not an ASCII letter"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object"
