"""Structured logs: Cloud Logging's keys, trace correlation, and no personal data."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.logs import CloudLoggingFormatter, TraceContext, configure_logging, parse_trace_headers

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


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


def log_lines(output: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.getvalue().splitlines()]


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """The production logging set-up, writing to a buffer instead of stdout; the root logger is restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("DEBUG", project_id="demo-project", stream=buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def json_logs(output: io.StringIO) -> logging.Logger:
    return logging.getLogger("app.test")


def test_one_json_object_per_line_with_cloud_logging_keys(json_logs: logging.Logger, output: io.StringIO) -> None:
    json_logs.warning("careful: %s", "x")
    try:
        int("boom")
    except ValueError:
        json_logs.exception("it broke")
    warning, error = log_lines(output)
    assert warning["severity"] == "WARNING"
    assert warning["message"] == "careful: x"
    assert error["severity"] == "ERROR"
    assert isinstance(error["message"], str)
    assert error["message"].startswith("it broke\nTraceback")
    assert "logging.googleapis.com/trace" not in warning


def test_logs_written_while_serving_carry_the_request_trace(json_logs: logging.Logger, output: io.StringIO) -> None:
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(store="memory"))

    @app.get("/log-something")
    async def log_something() -> dict[str, str]:
        json_logs.info("inside the request")
        return {}

    with TestClient(app) as client:
        client.get("/log-something", headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    (entry,) = [line for line in log_lines(output) if line["message"] == "inside the request"]
    assert entry["logging.googleapis.com/trace"] == f"projects/demo-project/traces/{TRACE}"
    assert entry["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert entry["logging.googleapis.com/trace_sampled"] is True


def test_a_date_of_birth_never_reaches_the_log(
    output: io.StringIO, caplog: pytest.LogCaptureFixture, client: TestClient
) -> None:
    caplog.set_level(logging.DEBUG)
    client.put("/hello/Private", json={"dateOfBirth": "1987-06-05"})
    client.put("/hello/Private", json={"dateOfBirth": "2999-06-05"})
    client.put("/hello/Private", json={"dateOfBirth": "1987-06-05", "extra": "1987-06-05"})
    client.get("/hello/Private")
    assert log_lines(output), "the JSON handler saw the requests' logs"
    for text in (output.getvalue(), caplog.text):
        assert "1987-06-05" not in text
        assert "2999-06-05" not in text


def test_a_formatter_without_a_project_leaves_the_trace_out() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert "logging.googleapis.com/trace" not in json.loads(CloudLoggingFormatter(project_id=None).format(record))
