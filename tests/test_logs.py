"""Structured logs through google-cloud-logging: the keys Cloud Logging reads, trace correlation, the access log,
and no personal data."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.logs import TraceContext, client_address, configure_logging, parse_trace_headers
from app.main import create_app
from app.settings import Settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
DIAGNOSTIC = "logging.googleapis.com/diagnostic"


@pytest.mark.parametrize(
    ("traceparent", "cloud_trace", "expected"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", None, TraceContext(TRACE, "00f067aa0ba902b7", sampled=True)),
        (f"00-{TRACE}-00f067aa0ba902b7-00", None, TraceContext(TRACE, "00f067aa0ba902b7", sampled=False)),
        (None, f"{TRACE}/1;o=1", TraceContext(TRACE, "0000000000000001", sampled=True)),
        (None, f"{TRACE.upper()}/18446744073709551615", TraceContext(TRACE, "ffffffffffffffff", sampled=False)),
        (None, TRACE, TraceContext(TRACE, None, sampled=False)),
        # traceparent wins over X-Cloud-Trace-Context when both are valid.
        (f"00-{TRACE}-00f067aa0ba902b7-01", f"{'1' * 32}/5", TraceContext(TRACE, "00f067aa0ba902b7", sampled=True)),
        # An invalid traceparent falls back to X-Cloud-Trace-Context.
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", f"{TRACE}/5", TraceContext(TRACE, "0000000000000005", False)),
        ("garbage", None, None),
        (None, "not-a-trace/5", None),
        (None, f"{TRACE}/18446744073709551616", TraceContext(TRACE, None, sampled=False)),
        (None, None, None),
    ],
)
def test_trace_headers(traceparent: str | None, cloud_trace: str | None, expected: TraceContext | None) -> None:
    assert parse_trace_headers(traceparent, cloud_trace) == expected


def log_lines(output: io.StringIO) -> list[dict[str, Any]]:
    """Every line the handler wrote, parsed, less the library's own diagnostic entry."""
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    return [line for line in lines if DIAGNOSTIC not in line]


@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """The production logging set-up, writing to a buffer instead of stdout; the root logger is restored after.

    The project id is "demo-project" unless the test is parametrised indirectly with another (or None)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("DEBUG", project_id=getattr(request, "param", "demo-project"), stream=buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


def test_one_json_object_per_line_with_cloud_logging_keys(logged: io.StringIO) -> None:
    logger = logging.getLogger("app.test")
    logger.warning("careful: %s", "x")
    try:
        int("boom")
    except ValueError:
        logger.exception("it broke")
    raw = [json.loads(line) for line in logged.getvalue().splitlines()]
    assert [DIAGNOSTIC in line for line in raw] == [True, False, False], "the library's diagnostic entry, once"
    warning, error = log_lines(logged)
    assert warning["severity"] == "WARNING"
    assert warning["message"] == "careful: x"
    assert (
        warning["logging.googleapis.com/sourceLocation"]["function"]
        == "test_one_json_object_per_line_with_cloud_logging_keys"
    )
    assert error["severity"] == "ERROR"
    # Error Reporting groups errors by the stack trace in the message.
    assert error["message"].startswith("it broke\nTraceback")
    assert not warning["logging.googleapis.com/trace"], "no request, no trace"


def log_inside_requests(*requests_headers: dict[str, str]) -> None:
    """Serves one request with each of the given headers, to an endpoint that logs "inside the request"."""
    app = create_app(Settings(store="memory"))

    @app.get("/log-something")
    async def log_something() -> dict[str, str]:
        logging.getLogger("app.test").info("inside the request")
        return {}

    with TestClient(app) as client:
        for headers in requests_headers:
            client.get("/log-something", headers=headers)


@pytest.mark.parametrize(
    ("headers", "span", "sampled"),
    [
        ({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, "00f067aa0ba902b7", True),
        ({"X-Cloud-Trace-Context": f"{TRACE}/1;o=0"}, "0000000000000001", False),
    ],
)
def test_logs_written_while_serving_carry_the_request_trace(
    logged: io.StringIO, headers: dict[str, str], span: str, sampled: bool
) -> None:
    log_inside_requests(headers, {})
    with_trace, without_trace = [line for line in log_lines(logged) if line.get("message") == "inside the request"]
    assert with_trace["logging.googleapis.com/trace"] == f"projects/demo-project/traces/{TRACE}"
    assert with_trace["logging.googleapis.com/spanId"] == span
    assert with_trace["logging.googleapis.com/trace_sampled"] is sampled
    assert not without_trace["logging.googleapis.com/trace"], "a request's trace never leaks into the next one"


@pytest.mark.parametrize("logged", [None], indirect=True)
def test_without_a_project_the_trace_is_left_out(logged: io.StringIO) -> None:
    log_inside_requests({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    (entry,) = [line for line in log_lines(logged) if line.get("message") == "inside the request"]
    assert not entry["logging.googleapis.com/trace"]
    assert entry["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"


def test_a_date_of_birth_never_reaches_the_log(
    logged: io.StringIO, caplog: pytest.LogCaptureFixture, client: TestClient
) -> None:
    caplog.set_level(logging.DEBUG)
    client.put("/hello/Private", json={"dateOfBirth": "1987-06-05"})
    client.put("/hello/Private", json={"dateOfBirth": "2999-06-05"})
    client.put("/hello/Private", json={"dateOfBirth": "1987-06-05", "extra": "1987-06-05"})
    client.get("/hello/Private")
    assert log_lines(logged), "the JSON handler saw the requests' logs"
    for text in (logged.getvalue(), caplog.text):
        assert "1987-06-05" not in text
        assert "2999-06-05" not in text


def test_the_access_log_has_no_query_string_and_the_client_the_proxy_saw(logged: io.StringIO) -> None:
    app = create_app(Settings(store="memory", access_log=True))
    with TestClient(app) as client:
        client.get(
            "/hello/Nobody?dateOfBirth=1955-05-05",
            headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "User-Agent": "test"},
        )
    (entry,) = [
        line for line in log_lines(logged) if line["logging.googleapis.com/labels"]["python_logger"] == "app.access"
    ]
    assert "1955-05-05" not in json.dumps(entry)
    assert entry["message"] == "GET /hello/Nobody 404"
    assert entry["httpRequest"]["requestUrl"] == "/hello/Nobody"
    assert entry["httpRequest"]["status"] == 404
    assert entry["httpRequest"]["remoteIp"] == "203.0.113.7"


def test_the_access_log_is_off_unless_asked_for(logged: io.StringIO) -> None:
    with TestClient(create_app(Settings(store="memory"))) as client:
        client.get("/hello/Nobody")
    assert not [
        line for line in log_lines(logged) if line["logging.googleapis.com/labels"]["python_logger"] == "app.access"
    ]


@pytest.mark.parametrize(
    ("forwarded", "peer", "expected"),
    [
        ([b"203.0.113.7"], ("10.0.0.1", 1), "203.0.113.7"),
        ([b"6.6.6.6, 203.0.113.7"], ("10.0.0.1", 1), "203.0.113.7"),
        ([b"6.6.6.6", b"203.0.113.7"], ("10.0.0.1", 1), "203.0.113.7"),
        ([b"6.6.6.6,"], ("10.0.0.1", 1), "10.0.0.1"),
        ([], ("10.0.0.1", 1), "10.0.0.1"),
        ([], None, None),
    ],
)
def test_the_client_is_the_last_forwarded_entry_else_the_peer(
    forwarded: list[bytes], peer: tuple[str, int] | None, expected: str | None
) -> None:
    scope = {"headers": [(b"x-forwarded-for", value) for value in forwarded], "client": peer}
    assert client_address(scope) == expected
