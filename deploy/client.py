"""The service's public contract as any client sees it, and the one HTTP client the smoke suite and the
synthetic load share. Nothing here comes from app/: a regression in the service cannot hide behind its own code."""

import json
import secrets
import string
import urllib.error
import urllib.request
from dataclasses import dataclass

LIVENESS_PATH = "/health/live"
READINESS_PATH = "/health/ready"
PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA_TYPE = "application/json"


def hello_path(username: str) -> str:
    return f"/hello/{username}"


def days_message(username: str, days: int) -> str:
    """The greeting for a birthday `days` days away (0: today), as the README's contract words it."""
    if days == 0:
        return f"Hello, {username}! Happy birthday!"
    return f"Hello, {username}! Your birthday is in {days} {'day' if days == 1 else 'days'}"


def fresh_username(prefix: str, letters: int = 20) -> str:
    """A name nobody can have written before: the API is public and has no DELETE, so fixed names are not ours."""
    return prefix + "".join(secrets.choice(string.ascii_letters) for _ in range(letters))


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def request(base_url: str, method: str, path: str, body: object = None, timeout: float = 10) -> Reply:
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"the base URL must start with http:// or https://, got {base_url!r}")
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": JSON_MEDIA_TYPE} if data is not None else {}
    outgoing = urllib.request.Request(  # noqa: S310 (scheme checked above)
        base_url.rstrip("/") + path, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            return Reply(response.status, response.headers.get("Content-Type", ""), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers.get("Content-Type", ""), error.read())
