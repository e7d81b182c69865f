"""The stand-in cloud, assembled: Cloud Run (control plane, revisions, router), Cloud Monitoring and the lock
bucket, serving on free loopback ports from one event loop in a thread of the process that owns it.

`Cloud.gcloud_environment()` is the environment that points the real gcloud, and the rollout, at it.
Every request a stand-in does not model ends up in `Cloud.not_understood`; the tests require it empty.
"""

import asyncio
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from rehearsal.api import ApiError, Json, NotModelled
from rehearsal.cloud_build import Builds
from rehearsal.faults import Registry
from rehearsal.front import CLOUD_BUILD_HOST, RESOURCE_MANAGER_HOST, RUN_HOST_SUFFIX, Front
from rehearsal.knative import CloudRun, Revision, Service, ServiceKey
from rehearsal.monitoring import Monitoring, MonitoringTime
from rehearsal.revisions import RevisionRuntime
from rehearsal.router import Router
from rehearsal.served import RequestLog, Served
from rehearsal.storage import STORAGE_HOST, StorageEmulator, StorageFront

T = TypeVar("T")
# What an instance inherits from this machine: enough to run Python, nothing about Google.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


@dataclass(frozen=True)
class CloudSettings:
    region: str = "europe-west1"
    compression: float = 1
    """How many times faster than Google Cloud the stand-in's clock runs (Monitoring's periods and delays)."""
    ingestion_delay: float = 180
    """Seconds (Google Cloud's) before a Monitoring sample is visible; Cloud Run documents up to 180."""


class Cloud:
    def __init__(self, workdir: Path, firestore_host: str, settings: CloudSettings = CloudSettings()) -> None:
        self.settings = settings
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.firestore_host = firestore_host
        self.registry = Registry()
        self.builds = Builds()
        self.requests = RequestLog()
        self.not_understood: list[str] = []
        self.traffic_history: list[tuple[float, ServiceKey, dict[str, int]]] = []
        """Every change of a service's status.traffic: when, which service, percent by revision."""
        self._emulator = StorageEmulator(self.logs / "storage-emulator.log")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stand-in cloud", daemon=True)
        self._runners: list[web.AppRunner] = []
        self._background: set[asyncio.Task[None]] = set()
        self.front_port = 0
        self.monitoring_port = 0

    # -- life cycle

    def __enter__(self) -> "Cloud":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        self._emulator.start()
        self._thread.start()
        try:
            self.run(self._start())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._thread.is_alive():
            self.run(self._stop(), timeout=60)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
        self._emulator.stop()

    async def _start(self) -> None:
        self.session = aiohttp.ClientSession()
        self.runtime = RevisionRuntime(self.registry, self._environment, self.logs, self._revision_ready)
        self.cloud_run = CloudRun(self.settings.region, self, self._soon)
        self.router = Router(self.cloud_run.services.get, self.runtime, self.requests)
        await self.router.start()
        self.storage = StorageFront(self._emulator.url, self.session)
        self.front = Front(self.cloud_run, self.storage, self.builds, self.not_understood.append)
        self.front_port = await self._serve(self.front.app())
        self.monitoring = Monitoring(
            self.requests,
            self.settings.region,
            MonitoringTime(self.settings.compression, ingestion_delay=self.settings.ingestion_delay),
            self.not_understood.append,
            time.time,
        )
        self.monitoring_port = await self._serve(self._monitoring_app())

    async def _stop(self) -> None:
        if hasattr(self, "runtime"):
            await self.runtime.close()
            await self.router.close()
            await self.session.close()
        for runner in self._runners:
            await runner.cleanup()

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        site = web.SockSite(runner, listener)
        await site.start()
        port: int = listener.getsockname()[1]
        return port

    def _monitoring_app(self) -> web.Application:
        async def time_series(request: web.Request) -> web.Response:
            query = {name: request.rel_url.query.getall(name) for name in request.rel_url.query}
            try:
                return web.json_response(self.monitoring.list_time_series(request.match_info["project"], query))
            except ApiError as error:
                return web.json_response(error.body(), status=error.code)

        async def anything_else(request: web.Request) -> web.Response:
            message = f"the rehearsal does not model Monitoring {request.method} {request.rel_url.path_qs}"
            self.not_understood.append(message)
            return web.json_response(ApiError(400, "INVALID_ARGUMENT", message).body(), status=400)

        app = web.Application()
        app.router.add_get("/v3/projects/{project}/timeSeries", time_series)
        app.router.add_route("*", "/{path:.*}", anything_else)
        return app

    # -- calls from other threads

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def call(self, function: Callable[[], T], timeout: float = 30) -> T:
        async def on_loop() -> T:
            return function()

        return self.run(on_loop(), timeout)

    def gcloud_environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of gcloud and of the rollout: every call goes to the stand-ins, with no credentials."""
        environment = {
            name: value
            for name, value in (os.environ if base is None else base).items()
            if not name.startswith("CLOUDSDK_") and name.lower() not in ("http_proxy", "https_proxy", "all_proxy")
        }
        environment.update(
            {
                "CLOUDSDK_CONFIG": str(self.workdir / "gcloud-config"),
                "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
                "CLOUDSDK_CORE_SHOULD_PROMPT_TO_ENABLE_API": "false",
                "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
                "CLOUDSDK_PROXY_TYPE": "http",
                "CLOUDSDK_PROXY_ADDRESS": "127.0.0.1",
                "CLOUDSDK_PROXY_PORT": str(self.front_port),
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": f"http://{RUN_HOST_SUFFIX.removeprefix('-')}/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": f"http://{STORAGE_HOST}/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": f"http://{RESOURCE_MANAGER_HOST}/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBUILD": f"http://{CLOUD_BUILD_HOST}/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING": f"http://127.0.0.1:{self.monitoring_port}/",
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        return environment

    # -- what Terraform would have made

    def create_bucket(self, name: str) -> None:
        self.run(self.storage.create_bucket(name))

    def create_service(self, namespace: str, body: Json) -> Json:
        return self.call(lambda: self.cloud_run.create_service(namespace, body))

    def service(self, namespace: str, name: str) -> Json:
        return self.call(lambda: self.cloud_run.get_service(namespace, name))

    def wait_until(self, check: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not self.call(check):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not happen within {timeout} s")
            time.sleep(0.1)

    def served(self, namespace: str) -> list[Served]:
        return self.call(lambda: list(self.requests.of(namespace)))

    # -- hooks of the Cloud Run controller (on the loop thread)

    def service_url(self, key: ServiceKey) -> str:
        return self.router.url(key, None)

    def tag_url(self, key: ServiceKey, tag: str) -> str:
        return self.router.url(key, tag)

    def revision_created(self, revision: Revision) -> None:
        self.runtime.deploy(revision)

    def traffic_changed(self, service: Service) -> None:
        split = {entry["revisionName"]: entry["percent"] for entry in service.status_traffic() if entry.get("percent")}
        self.traffic_history.append((time.time(), service.key, split))
        self._in_background(self._traffic_changed(service))

    async def _traffic_changed(self, service: Service) -> None:
        await self.router.traffic_changed(service)
        routable = {
            (one.namespace, entry["revisionName"])
            for one in self.cloud_run.services.values()
            for entry in one.status_traffic()
        }
        await self.runtime.retain(routable)

    def _revision_ready(self, namespace: str, name: str, ready: bool, reason: str, message: str) -> None:
        self.cloud_run.set_revision_ready(namespace, name, ready, reason, message)

    def _environment(self, revision: Revision, port: int) -> dict[str, str]:
        """What the container sees: its template's env, what Cloud Run sets, and the local stand-ins."""
        environment = {name: os.environ[name] for name in INHERITED if name in os.environ}
        environment.update({entry["name"]: entry.get("value", "") for entry in revision.container.get("env", [])})
        environment.update(
            {
                # Cloud Run sets these (container runtime contract).
                "PORT": str(port),
                "K_SERVICE": revision.service,
                "K_REVISION": revision.name,
                "K_CONFIGURATION": revision.service,
                # The project the metadata server would name, the emulator instead of Firestore, loopback only.
                "GOOGLE_CLOUD_PROJECT": revision.namespace,
                "FIRESTORE_EMULATOR_HOST": self.firestore_host,
                "BIRTHDAY_HOST": "127.0.0.1",
            }
        )
        return environment

    def _soon(self, callback: Callable[[], None]) -> None:
        self._loop.call_soon(callback)

    def _in_background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


__all__ = ["Cloud", "CloudSettings", "NotModelled"]
