"""The contract's rules for usernames and dates of birth, as pure functions that raise domain errors."""

import re
from datetime import date

from app.errors import InvalidDateOfBirth, InvalidUsername

USERNAME_MAX_LENGTH = 100
# ASCII only on purpose: str.isalpha() and \w accept any Unicode letter, and \d any Unicode digit.
_USERNAME_CHARS = rf"[A-Za-z]{{1,{USERNAME_MAX_LENGTH}}}"
_DATE_CHARS = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
# Anchored forms for the OpenAPI document, where patterns are ECMA regular expressions.
USERNAME_PATTERN = f"^{_USERNAME_CHARS}$"
DATE_PATTERN = f"^{_DATE_CHARS}$"
DATE_EXAMPLE = "1990-01-31"

# Checked with fullmatch: a "$" would let a trailing newline through.
_USERNAME = re.compile(_USERNAME_CHARS)
_DATE = re.compile(_DATE_CHARS)


def parse_username(raw: str) -> str:
    if _USERNAME.fullmatch(raw) is None:
        raise InvalidUsername(
            f"username in the path must be 1 to {USERNAME_MAX_LENGTH} ASCII letters (A-Z, a-z) and nothing else; "
            f"got {_describe_username(raw)}"
        )
    return raw


def parse_date_of_birth(raw: object, today: date) -> date:
    """Accepts only a "YYYY-MM-DD" string naming a real calendar day strictly before `today`."""
    if not isinstance(raw, str):
        raise InvalidDateOfBirth(
            f"dateOfBirth must be a string in YYYY-MM-DD format, e.g. {DATE_EXAMPLE}; got {_json_type(raw)}"
        )
    if _DATE.fullmatch(raw) is None:
        raise InvalidDateOfBirth(
            f"dateOfBirth must be in YYYY-MM-DD format with a four-digit year and two-digit month and day, "
            f"e.g. {DATE_EXAMPLE}"
        )
    try:
        parsed = date.fromisoformat(raw)
    except ValueError:
        raise InvalidDateOfBirth(f"dateOfBirth {raw} is not a real calendar day") from None
    if parsed >= today:
        raise InvalidDateOfBirth(f"dateOfBirth must be a date before today ({today.isoformat()}); got {raw}")
    return parsed


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
