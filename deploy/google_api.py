"""JSON over HTTP to a Google API, reached exactly where gcloud is configured to reach it.

One source of truth: `gcloud config list --format=json` (which includes CLOUDSDK_* environment variables) gives
the endpoint overrides, the proxy, the CA bundle and whether credentials are sent, and the token comes from
`gcloud auth print-access-token`. So the rollout's own calls and gcloud's go to the same place, in Cloud Build
and in the local rehearsal alike. Standard library only: the rollout depends on nothing but pyyaml.
"""

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from deploy.gcloud import Runner

DEFAULT_UNIVERSE = "googleapis.com"
TOKEN_REUSE_SECONDS = 240
"""gcloud hands out a token only with more than 300 s left (core/credentials/store.py, _CREDENTIALS_EXPIRY_WINDOW),
so one is good for this long, and polling does not start a gcloud process every second."""


class ApiError(Exception):
    """An error answer in the Google API format, or no answer at all (`code` None: refused, reset, timed out)."""

    def __init__(self, code: int | None, message: str, status: str = "") -> None:
        super().__init__(f"{code} {status}: {message}" if code is not None else f"no answer: {message}")
        self.code = code
        self.status = status

    @classmethod
    def from_answer(cls, code: int, body: bytes) -> "ApiError":
        try:
            error = json.loads(body).get("error", {})
        except (ValueError, AttributeError):
            error = {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        message = error.get("message") or body.decode(errors="replace").strip()[:500] or "no message"
        return cls(code, message, str(error.get("status", "")))


class Api(Protocol):
    def __call__(
        self, method: str, url: str, body: Mapping[str, Any] | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        """The JSON answer; raises ApiError for an error answer or none."""


def access_token_command() -> list[str]:
    return ["gcloud", "auth", "print-access-token"]


def config_command() -> list[str]:
    return ["gcloud", "config", "list", "--format=json"]


@dataclass(frozen=True)
class GcloudToken:
    """A short-lived token of whoever gcloud runs as: in Cloud Build, the deployer service account."""

    runner: Runner

    def __call__(self) -> str:
        return self.runner(access_token_command()).strip()


def gcloud_config(runner: Runner) -> dict[str, Any]:
    """`gcloud config list --format=json`: gcloud's properties, CLOUDSDK_* environment variables included."""
    config: dict[str, Any] = json.loads(runner(config_command()))
    return config


def _true(value: object) -> bool:
    return str(value).lower() in ("true", "1", "yes", "on")


@dataclass(frozen=True)
class GcloudConnection:
    """How gcloud reaches Google APIs: what `gcloud config list --format=json` says, read once."""

    endpoint_overrides: Mapping[str, str]
    proxy: str | None
    """An http proxy's URL (credentials included), or None to follow http_proxy/https_proxy as gcloud does."""
    ca_file: str | None
    universe_domain: str
    credentials: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "GcloudConnection":
        """Raises ValueError for a proxy setting gcloud itself would refuse, or one the standard library cannot use."""
        proxy = config.get("proxy", {})
        kind, address, port = proxy.get("type"), proxy.get("address"), proxy.get("port")
        # core/http_proxy.py: "Please set all or none of the following properties: proxy/type, proxy/address and
        # proxy/port"; with none, the environment's proxies (urllib.request.getproxies), as urllib does by default.
        if any((kind, address, port)) and not all((kind, address, port)):
            raise ValueError("gcloud's proxy/type, proxy/address and proxy/port must be set all together or not at all")
        if kind not in (None, "http"):
            raise ValueError(f"proxy/type {kind}: the rollout's own API calls go through an http proxy only")
        url = None
        if kind:
            user, password = proxy.get("username"), proxy.get("password")
            login = (
                f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password or '', safe='')}@" if user else ""
            )
            url = f"http://{login}{address}:{int(port)}"
        core = config.get("core", {})
        return cls(
            endpoint_overrides=dict(config.get("api_endpoint_overrides", {})),
            proxy=url,
            ca_file=core.get("custom_ca_certs_file") or None,
            universe_domain=core.get("universe_domain") or DEFAULT_UNIVERSE,
            credentials=not _true(config.get("auth", {}).get("disable_credentials", False)),
        )

    def root(self, api: str) -> str:
        """The API's base URL: its override, else https://{api}.{universe domain}/ (apis_internal.py)."""
        return self.endpoint_overrides.get(api) or f"https://{api}.{self.universe_domain}/"

    def regional_root(self, api: str, region: str) -> str:
        """gcloud's rule for a regional API such as Cloud Run: the region prefixed to the host of the base URL
        (command_lib/run/connection_context.py, DeriveRegionalEndpoint), so run.googleapis.com becomes
        europe-west1-run.googleapis.com and an override http://run.local/ becomes http://europe-west1-run.local/."""
        parts = urllib.parse.urlparse(self.root(api))
        return urllib.parse.urlunparse(parts._replace(netloc=f"{region}-{parts.netloc}"))


@dataclass
class ReusedToken:
    """A gcloud token, fetched again only once it is TOKEN_REUSE_SECONDS old."""

    fetch: Callable[[], str]
    clock: Callable[[], float] = time.monotonic
    _token: str = ""
    _fetched: float = float("-inf")

    def __call__(self) -> str:
        if self.clock() - self._fetched >= TOKEN_REUSE_SECONDS:
            self._token, self._fetched = self.fetch(), self.clock()
        return self._token


class JsonApi:
    """The production Api: urllib through gcloud's proxy, with gcloud's CA bundle and token; no call outlives the
    rollout's deadline."""

    def __init__(
        self,
        connection: GcloudConnection,
        token: Callable[[], str] | None,
        now: Callable[[], datetime],
        deadline: datetime,
    ) -> None:
        self._token = token
        self._now = now
        self._deadline = deadline
        proxies = {"http": connection.proxy, "https": connection.proxy} if connection.proxy else None
        context = ssl.create_default_context(cafile=connection.ca_file)
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler(proxies), urllib.request.HTTPSHandler(context=context)
        )

    @classmethod
    def from_gcloud_config(
        cls, config: Mapping[str, Any], runner: Runner, now: Callable[[], datetime], deadline: datetime
    ) -> tuple["JsonApi", GcloudConnection]:
        connection = GcloudConnection.from_config(config)
        token = ReusedToken(GcloudToken(runner)) if connection.credentials else None
        return cls(connection, token, now, deadline), connection

    def __call__(
        self, method: str, url: str, body: Mapping[str, Any] | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        budget = min(timeout, (self._deadline - self._now()).total_seconds())
        if budget <= 0:
            raise ApiError(None, f"{method} {url} not sent: the rollout's deadline has passed")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token()}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 (gcloud's endpoint)
        try:
            with self._opener.open(request, timeout=budget) as response:
                answer: dict[str, Any] = json.load(response)
                return answer
        except urllib.error.HTTPError as error:
            raise ApiError.from_answer(error.code, error.read()) from None
        except (OSError, ValueError) as error:  # refused, reset, timed out (URLError is an OSError), or not JSON
            raise ApiError(None, f"{method} {url}: {error}") from None
