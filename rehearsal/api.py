"""What every stand-in answers with: JSON, errors in the Google API format, and the requests it does not model."""

from typing import Any

Json = dict[str, Any]


class ApiError(Exception):
    """An error answer in the Google API error format: `{"error": {"code", "message", "status"}}`."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message

    def body(self) -> Json:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


class NotModelled(Exception):
    """A request the stand-in does not understand: answered 501 with this message, and reported to the test."""
