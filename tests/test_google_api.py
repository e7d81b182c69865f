"""The rollout's own Admin API calls go where gcloud's go: gcloud's endpoint override with the region prefixed,
its proxy, its CA bundle, its token or none, and error answers in the Google API format."""

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from deploy.gcloud import GcloudRunner
from deploy.google_api import (
    TOKEN_REUSE_SECONDS,
    ApiError,
    GcloudConnection,
    JsonApi,
    ReusedToken,
    gcloud_config,
)

MINUTE = timedelta(minutes=1)


def test_by_default_cloud_run_is_called_at_its_regional_endpoint_with_credentials() -> None:
    connection = GcloudConnection.from_config({"core": {"project": "p"}})
    assert connection.regional_root("run", "europe-west1") == "https://europe-west1-run.googleapis.com/"
    assert (connection.proxy, connection.ca_file, connection.credentials) == (None, None, True)


@pytest.mark.parametrize(
    ("override", "root"),
    [
        ("http://run.local/", "http://europe-west1-run.local/"),
        ("https://run.example.com:8443/", "https://europe-west1-run.example.com:8443/"),
        ("http://private.example/run/", "http://europe-west1-private.example/run/"),
    ],
)
def test_an_endpoint_override_gets_the_region_prefixed_to_its_host_as_gcloud_does(override: str, root: str) -> None:
    connection = GcloudConnection.from_config({"api_endpoint_overrides": {"run": override}})
    assert connection.regional_root("run", "europe-west1") == root


def test_the_universe_domain_the_ca_bundle_and_disabled_credentials_are_gclouds() -> None:
    connection = GcloudConnection.from_config(
        {
            "core": {"universe_domain": "example-cloud.test", "custom_ca_certs_file": "/etc/ssl/certs/ca.pem"},
            "auth": {"disable_credentials": "True"},
        }
    )
    assert connection.regional_root("run", "r1") == "https://r1-run.example-cloud.test/"
    assert connection.ca_file == "/etc/ssl/certs/ca.pem"
    assert connection.credentials is False


def test_an_http_proxy_is_used_with_its_credentials_quoted() -> None:
    proxy = {"type": "http", "address": "10.0.0.1", "port": "3128", "username": "ops", "password": "p@ss:w/rd"}
    assert GcloudConnection.from_config({"proxy": proxy}).proxy == "http://ops:p%40ss%3Aw%2Frd@10.0.0.1:3128"
    assert GcloudConnection.from_config({"proxy": {**proxy, "username": None}}).proxy == "http://10.0.0.1:3128"


@pytest.mark.parametrize(
    ("proxy", "refusal"),
    [
        ({"type": "http", "address": "10.0.0.1"}, "all together or not at all"),
        ({"type": "socks5", "address": "10.0.0.1", "port": "1080"}, "proxy/type socks5"),
        ({"type": "http_no_tunnel", "address": "10.0.0.1", "port": "3128"}, "http proxy only"),
    ],
)
def test_a_proxy_the_rollout_cannot_use_as_gcloud_does_is_refused(proxy: dict[str, str], refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal):
        GcloudConnection.from_config({"proxy": proxy})


def test_gcloud_reports_the_settings_the_rehearsal_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": "http://run.local/",
        "CLOUDSDK_PROXY_TYPE": "http",
        "CLOUDSDK_PROXY_ADDRESS": "127.0.0.1",
        "CLOUDSDK_PROXY_PORT": "8123",
        "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
    }.items():
        monkeypatch.setenv(name, value)
    runner = GcloudRunner(lambda: datetime.now(UTC), datetime.now(UTC) + MINUTE, MINUTE)
    connection = GcloudConnection.from_config(gcloud_config(runner))
    assert connection.regional_root("run", "europe-west1") == "http://europe-west1-run.local/"
    assert connection.proxy == "http://127.0.0.1:8123"
    assert connection.credentials is False


def test_a_token_is_fetched_again_only_once_it_is_old() -> None:
    fetched: list[int] = []
    now = [0.0]

    def fetch() -> str:
        fetched.append(1)
        return f"token-{len(fetched)}"

    token = ReusedToken(fetch, lambda: now[0])
    assert [token(), token()] == ["token-1", "token-1"]
    now[0] = TOKEN_REUSE_SECONDS - 1
    assert token() == "token-1"
    now[0] = TOKEN_REUSE_SECONDS
    assert token() == "token-2"


class Proxy(http.server.BaseHTTPRequestHandler):
    """An HTTP proxy in front of a made-up Cloud Run: records what arrives, answers as the API would."""

    seen: ClassVar[list[tuple[str, str, dict[str, str], Any]]] = []
    answers: ClassVar[list[tuple[int, bytes]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        type(self).seen.append((self.command, self.path, dict(self.headers), body))
        status, payload = type(self).answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = _answer  # noqa: N815 (BaseHTTPRequestHandler's naming)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what arrived, not a log."""


@pytest.fixture
def proxy() -> Iterator[int]:
    Proxy.seen.clear()
    Proxy.answers.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def api_through(port: int, *, credentials: bool = True) -> tuple[JsonApi, str]:
    config = {"proxy": {"type": "http", "address": "127.0.0.1", "port": str(port)}}
    connection = GcloudConnection.from_config({**config, "api_endpoint_overrides": {"run": "http://run.local/"}})
    now = datetime.now(UTC)
    api = JsonApi(connection, (lambda: "ya29.t") if credentials else None, lambda: now, now + MINUTE)
    return api, connection.regional_root("run", "europe-west1") + "apis/serving.knative.dev/v1/namespaces/p/services/s"


def test_calls_go_through_gclouds_proxy_to_the_regional_host_with_the_token_and_json(proxy: int) -> None:
    api, url = api_through(proxy)
    Proxy.answers += [(200, b'{"metadata": {"generation": 3}}'), (200, b'{"metadata": {"generation": 4}}')]
    assert api("GET", url) == {"metadata": {"generation": 3}}
    assert api("PUT", url, {"spec": {"traffic": []}})["metadata"]["generation"] == 4
    (get, path, headers, _), (put, _, put_headers, body) = Proxy.seen
    assert (get, put) == ("GET", "PUT")
    assert path == url, "in proxy form: the absolute URL, for the region's host"
    assert headers["Authorization"] == put_headers["Authorization"] == "Bearer ya29.t"
    assert put_headers["Content-Type"] == "application/json"
    assert body == {"spec": {"traffic": []}}


def test_no_credentials_means_no_authorization_header(proxy: int) -> None:
    api, url = api_through(proxy, credentials=False)
    Proxy.answers.append((200, b"{}"))
    api("GET", url)
    assert "Authorization" not in Proxy.seen[0][2]


def test_an_error_answer_keeps_its_code_status_and_message(proxy: int) -> None:
    api, url = api_through(proxy)
    conflict = {"error": {"code": 409, "message": "version 'a' was specified but current is 'b'", "status": "ABORTED"}}
    Proxy.answers += [(409, json.dumps(conflict).encode()), (502, b"<html>Bad Gateway</html>")]
    with pytest.raises(ApiError) as refused:
        api("PUT", url, {})
    assert (refused.value.code, refused.value.status) == (409, "ABORTED")
    assert str(refused.value) == "409 ABORTED: version 'a' was specified but current is 'b'"
    with pytest.raises(ApiError, match="502 : <html>Bad Gateway</html>"):
        api("GET", url)


def test_no_answer_is_an_error_without_a_code() -> None:
    api, url = api_through(1)  # nothing listens on port 1
    with pytest.raises(ApiError, match=r"no answer: GET http://europe-west1-run\.local/") as failed:
        api("GET", url)
    assert failed.value.code is None


def test_no_call_starts_past_the_deadline() -> None:
    connection = GcloudConnection.from_config({})
    start = datetime.now(UTC)
    api = JsonApi(connection, None, lambda: start + MINUTE, start + MINUTE)
    with pytest.raises(ApiError, match="not sent: the rollout's deadline has passed"):
        api("GET", "https://europe-west1-run.googleapis.com/")
