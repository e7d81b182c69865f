"""What a hostile client can do to the real server (`python -m app`, uvicorn with httptools) over raw sockets:
oversized headers, a body that never arrives, and paths that the test client would have normalised."""

import json
import socket
import time
from collections.abc import Iterator

import pytest

from app.server import MAX_REQUEST_HEAD_BYTES
from dev.service import ServiceProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One server for the module; the in-memory store, since nothing here is about storage."""
    process = ServiceProcess(
        {"BIRTHDAY_STORE": "memory", "BIRTHDAY_LOG_LEVEL": "INFO"}, tmp_path_factory.mktemp("server") / "server.log"
    )
    process.start()
    yield process
    # A graceful stop, so that the process writes its coverage data.
    process.terminate()


def exchange(server: ServiceProcess, request: bytes, *, timeout: float = 5) -> bytes:
    """Sends `request` on a fresh connection and reads until the server closes it or goes quiet."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as connection:
        connection.sendall(request)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and _complete(answer):
                    break
        except TimeoutError:
            pass
        return answer


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body) if body else {}


def get(path: str, *headers: str, host: str = "test") -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_headers_up_to_the_cap_are_served(server: ServiceProcess) -> None:
    padding = "x" * (MAX_REQUEST_HEAD_BYTES // 2)
    status, _ = status_and_body(exchange(server, get("/health/live", f"X-Padding: {padding}")))
    assert status == 200


@pytest.mark.parametrize("size", [MAX_REQUEST_HEAD_BYTES + 1, 200_000], ids=["just over", "200 kB"])
def test_a_head_over_the_cap_is_431_problem(server: ServiceProcess, size: int) -> None:
    status, problem = status_and_body(exchange(server, get("/health/live", f"X-Padding: {'x' * size}")))
    assert status == 431
    assert problem["status"] == 431
    assert str(MAX_REQUEST_HEAD_BYTES) in str(problem["detail"])


def test_many_small_headers_count_together(server: ServiceProcess) -> None:
    headers = [f"X-Padding-{n}: {'x' * 100}" for n in range(MAX_REQUEST_HEAD_BYTES // 100)]
    status, _ = status_and_body(exchange(server, get("/health/live", *headers)))
    assert status == 431


def test_three_endless_headers_cost_no_memory(server: ServiceProcess) -> None:
    """What the issue reproduced: three connections each sending a 30 MB header (RSS went from 121 to 266 MB)."""
    before = server.peak_rss_mb()
    connections = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
    sent = [0, 0, 0]
    chunk = b"x" * 65536
    try:
        for connection in connections:
            connection.sendall(b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Huge: ")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(0 <= n < 30_000_000 for n in sent):
            for index, connection in enumerate(connections):
                if 0 <= sent[index] < 30_000_000:
                    try:
                        connection.sendall(chunk)
                        sent[index] += len(chunk)
                    except OSError:
                        sent[index] = -1  # the server closed it
        answers = [connection.recv(65536) for connection in connections]
    finally:
        for connection in connections:
            connection.close()
    assert sent == [-1, -1, -1], f"the server kept reading: {sent}"
    assert all(answer.startswith(b"HTTP/1.1 431 ") for answer in answers), answers
    assert server.peak_rss_mb() - before < 10
    status, _ = status_and_body(exchange(server, get("/health/live")))
    assert status == 200, "the server goes on serving"


def test_a_client_that_drops_mid_body_is_no_error(server: ServiceProcess) -> None:
    request = (
        b"PUT /hello/Dropped HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
        b'{"dateOfBirth": '
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        connection.sendall(request)
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "left before sending the whole body" not in server.log():
        time.sleep(0.05)
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    (dropped,) = [line for line in lines if "left before sending the whole body" in line.get("message", "")]
    assert dropped["severity"] == "INFO"
    assert "Traceback" not in server.log()
    assert not [line for line in lines if line["severity"] in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize(
    ("path", "status", "problem_type"),
    [
        ("/hello/a%2Fb", 400, "urn:birthday-api:problem:invalid-username"),
        ("/hello/a%2fb", 400, "urn:birthday-api:problem:invalid-username"),
        ("/hello/Alice/", 404, "about:blank"),
    ],
)
def test_paths_as_the_real_server_hands_them_over(
    server: ServiceProcess, path: str, status: int, problem_type: str
) -> None:
    answer = exchange(server, get(path, host="evil.example"))
    assert status_and_body(answer)[0] == status
    assert status_and_body(answer)[1]["type"] == problem_type
    assert b"location:" not in answer.lower()
