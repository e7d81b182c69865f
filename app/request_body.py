"""Reads the PUT body under the contract's limits: JSON only, at most 1 KiB, one known field."""

import json
from typing import Any

from fastapi import Request

from app.errors import BodyTooLarge, InvalidBody, UnsupportedMediaType
from app.validation import DATE_EXAMPLE

MAX_BODY_BYTES = 1024
JSON_MEDIA_TYPE = "application/json"
DATE_OF_BIRTH_KEY = "dateOfBirth"
_HOW_TO = f'send {{"{DATE_OF_BIRTH_KEY}": "YYYY-MM-DD"}}, e.g. {{"{DATE_OF_BIRTH_KEY}": "{DATE_EXAMPLE}"}}'


async def read_date_of_birth_field(request: Request) -> object:
    """The raw value of `dateOfBirth`; its format is validation.parse_date_of_birth's business."""
    _require_json_media_type(request.headers.get("content-type"))
    document = _parse_json(await _read_limited(request))
    if not isinstance(document, dict):
        raise InvalidBody(f"the body must be a JSON object; {_HOW_TO}")
    unknown = sorted(set(document) - {DATE_OF_BIRTH_KEY})
    if unknown:
        raise InvalidBody(f"unknown field(s) {', '.join(map(json.dumps, unknown))}; {_HOW_TO}")
    if DATE_OF_BIRTH_KEY not in document:
        raise InvalidBody(f"the field {DATE_OF_BIRTH_KEY} is required; {_HOW_TO}")
    return document[DATE_OF_BIRTH_KEY]


def _require_json_media_type(content_type: str | None) -> None:
    # A missing Content-Type is accepted on purpose: some clients send a raw JSON body without one.
    if content_type is None:
        return
    if content_type.split(";", 1)[0].strip().lower() != JSON_MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not supported; send Content-Type: {JSON_MEDIA_TYPE} (or none)"
        )


async def _read_limited(request: Request) -> bytes:
    too_large = BodyTooLarge(f"the body must be at most {MAX_BODY_BYTES} bytes; {_HOW_TO}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise InvalidBody(f"the request has no body; {_HOW_TO}")
    try:
        return json.loads(body, object_pairs_hook=_reject_duplicate_keys)
    except (ValueError, RecursionError) as error:
        reason = error.args[0] if isinstance(error, _DuplicateKeyError) else "the body is not valid JSON"
        raise InvalidBody(f"{reason}; {_HOW_TO}") from None


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _DuplicateKeyError("the body repeats a field name")
    return document
