"""The HTTP contract, row by row, through the real app on the emulator and on the in-memory store."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TODAY
from tests.support.clock import FixedClock

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}


def put(client: TestClient, username: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.put(f"/hello/{username}", content=content, headers=JSON if headers is None else headers)


def assert_problem(response: Any, status: int, type_suffix: str, *detail_fragments: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert set(problem) == {"type", "title", "status", "detail"}
    assert problem["status"] == status
    assert problem["type"].endswith(type_suffix)
    assert problem["title"]
    for fragment in detail_fragments:
        assert fragment in problem["detail"]
    assert "Traceback" not in response.text


class TestSaveAndGreet:
    def test_put_answers_204_with_an_empty_body(self, client: TestClient) -> None:
        response = put(client, "John", {"dateOfBirth": "1990-12-01"})
        assert response.status_code == 204
        assert response.content == b""

    @pytest.mark.parametrize(
        ("date_of_birth", "message"),
        [
            ("1990-12-04", "Hello, John! Your birthday is in 5 days"),
            ("1990-11-30", "Hello, John! Your birthday is in 1 day"),
            ("1990-11-29", "Hello, John! Happy birthday!"),
            ("1990-11-28", "Hello, John! Your birthday is in 364 days"),
        ],
    )
    def test_get_greets_with_the_days_left(self, client: TestClient, date_of_birth: str, message: str) -> None:
        put(client, "John", {"dateOfBirth": date_of_birth})
        response = client.get("/hello/John")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"message": message}

    def test_a_second_put_replaces_the_first(self, client: TestClient) -> None:
        put(client, "John", {"dateOfBirth": "1990-12-04"})
        put(client, "John", {"dateOfBirth": "1990-11-30"})
        assert client.get("/hello/John").json() == {"message": "Hello, John! Your birthday is in 1 day"}

    def test_the_same_put_twice_gives_the_same_result(self, client: TestClient) -> None:
        first = put(client, "John", {"dateOfBirth": "1990-12-04"})
        second = put(client, "John", {"dateOfBirth": "1990-12-04"})
        assert (first.status_code, second.status_code) == (204, 204)
        assert client.get("/hello/John").json()["message"].endswith("in 5 days")

    def test_usernames_are_case_sensitive(self, client: TestClient) -> None:
        put(client, "John", {"dateOfBirth": "1990-12-04"})
        put(client, "john", {"dateOfBirth": "1990-11-30"})
        assert client.get("/hello/John").json() == {"message": "Hello, John! Your birthday is in 5 days"}
        assert client.get("/hello/john").json() == {"message": "Hello, john! Your birthday is in 1 day"}
        assert_problem(client.get("/hello/JOHN"), 404, "user-not-found")

    def test_100_letters_are_a_username(self, client: TestClient) -> None:
        name = "Ab" * 50
        assert put(client, name, {"dateOfBirth": "2000-01-01"}).status_code == 204
        assert client.get(f"/hello/{name}").json()["message"].startswith(f"Hello, {name}! ")

    def test_born_yesterday_is_accepted(self, client: TestClient) -> None:
        assert put(client, "Baby", {"dateOfBirth": "2026-11-28"}).status_code == 204

    def test_oldest_representable_date_is_accepted(self, client: TestClient) -> None:
        assert put(client, "Methuselah", {"dateOfBirth": "0001-01-01"}).status_code == 204

    def test_content_type_may_be_omitted_or_carry_parameters(self, client: TestClient) -> None:
        assert put(client, "NoType", {"dateOfBirth": "1990-01-01"}, headers={}).status_code == 204
        with_charset = {"Content-Type": "Application/JSON; charset=utf-8"}
        assert put(client, "Charset", {"dateOfBirth": "1990-01-01"}, headers=with_charset).status_code == 204

    def test_leap_day_birth_is_greeted_on_28_february_in_common_years(
        self, client: TestClient, clock: FixedClock
    ) -> None:
        put(client, "Leap", {"dateOfBirth": "2000-02-29"})
        clock.current = TODAY.replace(year=2027, month=2, day=28)
        assert client.get("/hello/Leap").json() == {"message": "Hello, Leap! Happy birthday!"}
        clock.current = TODAY.replace(year=2028, month=2, day=28)
        assert client.get("/hello/Leap").json() == {"message": "Hello, Leap! Your birthday is in 1 day"}

    def test_the_greeting_follows_the_clock(self, client: TestClient, clock: FixedClock) -> None:
        put(client, "John", {"dateOfBirth": "1990-12-04"})
        clock.current = TODAY.replace(day=30)
        assert client.get("/hello/John").json()["message"].endswith("in 4 days")


class TestUsernames:
    @pytest.mark.parametrize(
        "username",
        [
            pytest.param("A" * 101, id="101 letters"),
            pytest.param("John1", id="digit"),
            pytest.param("John_Doe", id="underscore"),
            pytest.param("John-Doe", id="hyphen"),
            pytest.param("John%20Doe", id="space"),
            pytest.param("J%C3%B8hn", id="non-ASCII letter"),
            pytest.param("%EF%BC%AAohn", id="full-width letter"),
            pytest.param("John%0A", id="trailing newline"),
            pytest.param("John.json", id="dot"),
        ],
    )
    def test_anything_but_ascii_letters_is_400_on_put_and_get(self, client: TestClient, username: str) -> None:
        assert_problem(put(client, username, {"dateOfBirth": "1990-01-01"}), 400, "invalid-username", "ASCII letters")
        assert_problem(client.get(f"/hello/{username}"), 400, "invalid-username", "ASCII letters")

    @pytest.mark.parametrize("username", ["a%2Fb", "a%2fb", "John%2F"])
    def test_an_encoded_slash_is_part_of_the_username_and_so_400(self, client: TestClient, username: str) -> None:
        assert_problem(put(client, username, {"dateOfBirth": "1990-01-01"}), 400, "invalid-username", "ASCII letters")
        assert_problem(client.get(f"/hello/{username}"), 400, "invalid-username", "ASCII letters")

    def test_a_bad_username_is_reported_before_a_bad_body(self, client: TestClient) -> None:
        assert_problem(put(client, "John1", b"nonsense"), 400, "invalid-username")
        assert_problem(put(client, "John1", b"{}", headers={"Content-Type": "text/plain"}), 400, "invalid-username")
        assert_problem(put(client, "John1", b"x" * 2048), 400, "invalid-username")

    def test_an_empty_username_is_no_route(self, client: TestClient) -> None:
        assert_problem(client.get("/hello/"), 404, "about:blank")


class TestDatesOfBirth:
    @pytest.mark.parametrize(
        ("value", "detail"),
        [
            ("1990-1-5", "YYYY-MM-DD"),
            ("01-01-1990", "YYYY-MM-DD"),
            ("1990/01/05", "YYYY-MM-DD"),
            ("19900105", "YYYY-MM-DD"),
            ("90-01-05", "YYYY-MM-DD"),
            ("1990-01-05T00:00:00", "YYYY-MM-DD"),
            ("1990-01-05 00:00", "YYYY-MM-DD"),
            ("1990-01-05\n", "YYYY-MM-DD"),
            (" 1990-01-05", "YYYY-MM-DD"),
            ("+1990-01-05", "YYYY-MM-DD"),
            ("\uff11\uff19\uff19\uff10-01-05", "YYYY-MM-DD"),  # full-width digits
            ("", "YYYY-MM-DD"),
            ("2023-02-29", "not a real calendar day"),
            ("2023-02-30", "not a real calendar day"),
            ("1990-13-01", "not a real calendar day"),
            ("1990-04-31", "not a real calendar day"),
            ("1990-00-10", "not a real calendar day"),
            ("0000-01-01", "not a real calendar day"),
            ("2026-11-29", "before today (2026-11-29)"),
            ("2026-11-30", "before today"),
            ("9999-12-31", "before today"),
        ],
    )
    def test_bad_strings_are_400(self, client: TestClient, value: str, detail: str) -> None:
        assert_problem(put(client, "John", {"dateOfBirth": value}), 400, "invalid-date-of-birth", "dateOfBirth", detail)

    @pytest.mark.parametrize(
        ("value", "kind"),
        [
            (19900105, "a number"),
            (647222400, "a number"),
            (1990.5, "a number"),
            (None, "null"),
            (True, "a boolean"),
            (["1990-01-05"], "an array"),
            ({"year": 1990}, "an object"),
        ],
    )
    def test_other_json_types_are_400(self, client: TestClient, value: object, kind: str) -> None:
        assert_problem(put(client, "John", {"dateOfBirth": value}), 400, "invalid-date-of-birth", f"got {kind}")

    def test_a_rejected_put_loses_nothing(self, client: TestClient) -> None:
        put(client, "John", {"dateOfBirth": "1990-12-04"})
        put(client, "John", {"dateOfBirth": "2030-01-01"})
        assert client.get("/hello/John").json()["message"].endswith("in 5 days")


class TestBodies:
    @pytest.mark.parametrize(
        ("body", "detail"),
        [
            pytest.param(b"", "no body", id="no body"),
            pytest.param(b"   ", "no body", id="blank body"),
            pytest.param(b"{", "not valid JSON", id="truncated JSON"),
            pytest.param(b"dateOfBirth=1990-01-01", "not valid JSON", id="form encoded"),
            pytest.param(b"\xff\xfe", "not valid JSON", id="not UTF-8"),
            pytest.param(b"[" * 1020, "not valid JSON", id="deeply nested"),
            pytest.param(b'"1990-01-01"', "JSON object", id="JSON string"),
            pytest.param(b'["1990-01-01"]', "JSON object", id="JSON array"),
            pytest.param(b"null", "JSON object", id="JSON null"),
            pytest.param(b"{}", "field dateOfBirth is required", id="missing field"),
            pytest.param(b'{"dateofbirth": "1990-01-01"}', 'unknown field(s) "dateofbirth"', id="wrong case"),
            pytest.param(b'{"dateOfBirth": "1990-01-01", "name": "x"}', 'unknown field(s) "name"', id="extra field"),
            pytest.param(
                b'{"dateOfBirth": "1990-01-01", "dateOfBirth": "1991-01-01"}', "repeats a field", id="duplicate"
            ),
        ],
    )
    def test_malformed_bodies_are_400(self, client: TestClient, body: bytes, detail: str) -> None:
        assert_problem(put(client, "John", body), 400, "invalid-body", detail, '{"dateOfBirth": "YYYY-MM-DD"}')

    @pytest.mark.parametrize(
        "content_type",
        ["text/plain", "application/x-www-form-urlencoded", "application/xml", "application/json-seq", ""],
    )
    def test_other_content_types_are_415(self, client: TestClient, content_type: str) -> None:
        response = put(client, "John", {"dateOfBirth": "1990-01-01"}, headers={"Content-Type": content_type})
        assert_problem(response, 415, "unsupported-media-type", "send Content-Type: application/json")

    @pytest.mark.parametrize(
        "content_type",
        ["application/json; charset=latin-1", "application/json; charset=utf-16", "application/json; version=2"],
    )
    def test_a_charset_other_than_utf_8_is_415(self, client: TestClient, content_type: str) -> None:
        response = put(client, "John", {"dateOfBirth": "1990-01-01"}, headers={"Content-Type": content_type})
        assert_problem(response, 415, "unsupported-media-type", "UTF-8")

    def test_a_body_that_is_not_utf_8_is_400_even_without_a_content_type(self, client: TestClient) -> None:
        utf_16 = json.dumps({"dateOfBirth": "1990-01-01"}).encode("utf-16")
        assert_problem(put(client, "John", utf_16, headers={}), 400, "invalid-body", "not valid JSON")

    def test_two_content_types_are_415_not_a_guess(self, client: TestClient) -> None:
        headers = [("Content-Type", "application/json"), ("Content-Type", "text/plain")]
        response = client.put("/hello/John", content=b'{"dateOfBirth": "1990-01-01"}', headers=headers)
        assert_problem(response, 415, "unsupported-media-type", "2 Content-Type headers")

    @pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity, gzip"])
    def test_a_compressed_body_is_415(self, client: TestClient, encoding: str) -> None:
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        assert_problem(
            put(client, "John", {"dateOfBirth": "1990-01-01"}, headers=headers), 415, "unsupported-media-type"
        )
        assert_problem(client.get("/hello/John"), 404, "user-not-found")

    def test_content_encoding_identity_is_no_encoding(self, client: TestClient) -> None:
        headers = {"Content-Type": "application/json", "Content-Encoding": "identity"}
        assert put(client, "John", {"dateOfBirth": "1990-01-01"}, headers=headers).status_code == 204

    def test_a_body_over_1_kib_is_413(self, client: TestClient) -> None:
        body = json.dumps({"dateOfBirth": "1990-01-01", "padding": "x" * 1024}).encode()
        assert_problem(put(client, "John", body), 413, "body-too-large", "1024 bytes")

    def test_a_streamed_body_over_1_kib_is_413(self, client: TestClient) -> None:
        def chunks() -> Any:
            yield b'{"dateOfBirth": "1990-01-01", "padding": "'
            yield b"x" * 2048
            yield b'"}'

        response = client.put("/hello/John", content=chunks(), headers=JSON)
        assert "content-length" not in response.request.headers
        assert_problem(response, 413, "body-too-large")

    def test_exactly_1_kib_is_accepted(self, client: TestClient) -> None:
        body = b'{"dateOfBirth": "1990-01-01"}'
        body += b" " * (1024 - len(body))
        assert put(client, "John", body).status_code == 204


class TestOtherAnswers:
    def test_unknown_user_is_404(self, client: TestClient) -> None:
        assert_problem(client.get("/hello/Nobody"), 404, "user-not-found", "Nobody", "PUT /hello/Nobody")

    @pytest.mark.parametrize("method", ["POST", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    def test_other_methods_are_405(self, client: TestClient, method: str) -> None:
        response = client.request(method, "/hello/John")
        assert response.status_code == 405
        assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "PUT"}
        if method != "HEAD":
            assert_problem(response, 405, "about:blank", method)

    def test_unknown_paths_are_404_problems(self, client: TestClient) -> None:
        assert_problem(client.get("/nothing/here"), 404, "about:blank", "/nothing/here")

    @pytest.mark.parametrize("method", ["GET", "PUT"])
    def test_a_trailing_slash_is_no_route_and_never_a_redirect(self, client: TestClient, method: str) -> None:
        put(client, "Alice", {"dateOfBirth": "1990-12-04"})
        response = client.request(
            method, "/hello/Alice/", headers={**JSON, "Host": "evil.example"}, content=b'{"dateOfBirth": "1990-01-01"}'
        )
        assert_problem(response, 404, "about:blank", "/hello/Alice/")
        assert "location" not in response.headers

    def test_no_answer_is_ever_a_422(self, client: TestClient) -> None:
        spec = client.get("/openapi.json").json()
        assert "422" not in json.dumps(spec)
        assert "ValidationError" not in json.dumps(spec)


def test_an_unexpected_error_is_a_500_problem_that_leaks_nothing(make_settings: Any) -> None:
    from app.main import create_app

    app = create_app(make_settings(store="memory"))

    @app.get("/explode")
    async def explode() -> None:
        raise RuntimeError("secret connection string")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/explode")
    assert_problem(response, 500, "about:blank", "unexpected error")
    assert "secret" not in response.text


def test_fastapi_validation_would_still_answer_400_not_422(make_settings: Any) -> None:
    # The guard behind the contract: a route that did let FastAPI validate would still never answer 422.
    from app.main import create_app

    app = create_app(make_settings(store="memory"))

    @app.get("/validated")
    async def validated(count: int) -> dict[str, int]:
        return {"count": count}

    with TestClient(app) as client:
        assert_problem(client.get("/validated?count=many"), 400, "about:blank", "does not match the API")
