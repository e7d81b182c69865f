"""What every storage-backed call must answer while storage cannot: the same for the app and the process."""

import time
from typing import Any, Protocol

from app.health import LIVENESS_PATH, READINESS_PATH


class HttpClient(Protocol):
    def request(self, method: str, url: str, *, json: Any = None) -> Any: ...


STORAGE_CALLS: list[tuple[str, str, dict[str, str] | None]] = [
    ("PUT", "/hello/Ada", {"dateOfBirth": "1815-12-10"}),
    ("GET", "/hello/Ada", None),
    ("GET", READINESS_PATH, None),
]


def assert_every_storage_call_is_503_within(client: HttpClient, seconds: float) -> None:
    for method, path, body in STORAGE_CALLS:
        started = time.monotonic()
        response = client.request(method, path, json=body)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        assert "retry later" in response.json()["detail"]
        assert elapsed < seconds, f"{method} {path} took {elapsed:.2f} s"
    assert client.request("GET", LIVENESS_PATH).status_code == 200
