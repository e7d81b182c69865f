"""Revisions as real processes: one instance of each revision that may receive requests, probed as Cloud Run
probes it, with the image's faults injected in front of it.

Modelled on the Container and Probe messages of the Admin API: the startup probe (httpGet or, when none is
given, a TCP connection, Cloud Run's default) decides whether the revision ever becomes Ready; after that the
liveness probe restarts an instance that fails it `failureThreshold` times in a row, as does a process that
exits. A request waits for a Ready instance up to the revision's `timeoutSeconds`, then gets 503; one that
takes longer than `timeoutSeconds` gets 504.
"""

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from dev.network import free_port
from rehearsal.api import Json
from rehearsal.faults import Behaviour, Registry
from rehearsal.knative import Revision

REPOSITORY = Path(__file__).resolve().parents[1]
PROGRAMS = {"app": [sys.executable, "-m", "app"], "hello": [sys.executable, "-m", "rehearsal.hello"]}
# Headers that belong to one connection, never forwarded (RFC 9110, section 7.6.1).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
# Cloud Run's default startup probe when the container defines none: a TCP connection, for up to 240 s.
DEFAULT_STARTUP_PROBE: Json = {"tcpSocket": {}, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 240}
STOP_GRACE_SECONDS = 10  # Cloud Run sends SIGKILL 10 s after SIGTERM
DRAIN_SECONDS = 3
"""An instance whose revision lost its traffic and tag stops only once it has had no request for this long."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def text(cls, status: int, text: str) -> "Reply":
        return cls(status, [("Content-Type", "text/plain; charset=utf-8")], text.encode())


@dataclass(frozen=True)
class Probe:
    path: str | None
    """None: a TCP connection."""
    initial_delay: float
    period: float
    timeout: float
    failure_threshold: int

    @classmethod
    def of(cls, spec: Json | None, default: Json) -> "Probe":
        spec = spec or default
        return cls(
            path=(spec.get("httpGet") or {}).get("path", "/") if "httpGet" in spec else None,
            initial_delay=float(spec.get("initialDelaySeconds", 0)),
            period=float(spec.get("periodSeconds", 10)),
            timeout=float(spec.get("timeoutSeconds", 1)),
            failure_threshold=int(spec.get("failureThreshold", 3)),
        )


ReadyCallback = Callable[[str, str, bool, str, str], None]
"""(namespace, revision, ready, reason, message): what the controller is told once per revision."""
Environment = Callable[[Revision, int], Mapping[str, str]]
"""The environment of a revision's process listening on a port."""


class Instance:
    """One container instance: the process and where it listens."""

    def __init__(self, command: list[str], environment: Mapping[str, str], log_path: Path) -> None:
        self.command = command
        self.environment = environment
        self.port = int(environment["PORT"])
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                env=dict(self.environment),
                cwd=REPOSITORY,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def exited(self) -> bool:
        return self.process is None or self.process.returncode is not None

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            self.kill()
            await self.process.wait()


class RunningRevision:
    """A revision's instance, its probes and its faults."""

    def __init__(self, runtime: "RevisionRuntime", revision: Revision, behaviour: Behaviour) -> None:
        self.runtime = runtime
        self.revision = revision
        self.behaviour = behaviour
        container = revision.container
        self.startup = Probe.of(container.get("startupProbe"), DEFAULT_STARTUP_PROBE)
        self.liveness = Probe.of(container.get("livenessProbe"), {}) if container.get("livenessProbe") else None
        self.timeout = float(revision.body["spec"].get("timeoutSeconds", 300))
        self.instance: Instance | None = None
        self.serving = asyncio.Event()
        self.requests = 0
        self.in_flight = 0
        self.last_request = time.monotonic()
        self.restarts = 0
        self.deployed = False
        """Passed its first startup probe: from then on the controller counts it Ready."""
        self.task: asyncio.Task[None] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.revision.namespace, self.revision.name)

    async def run(self) -> None:
        first = True
        try:
            while True:
                instance = await self._start_instance()
                ready, message = await self._probe_startup(instance)
                if not ready:
                    await instance.stop(grace=1)
                    if first:
                        self.runtime.report(self, ready=False, reason="HealthCheckContainerError", message=message)
                        return
                    self.restarts += 1
                    continue
                if first:
                    self.deployed = True
                    self.runtime.report(self, ready=True, reason="", message="")
                    first = False
                self.serving.set()
                await self._until_unhealthy(instance)
                self.serving.clear()
                await instance.stop(grace=1)
                self.restarts += 1
        finally:
            self.serving.clear()
            if self.instance is not None:
                await self.instance.stop()

    async def _start_instance(self) -> Instance:
        port = free_port()
        instance = Instance(
            PROGRAMS[self.behaviour.program],
            self.runtime.environment(self.revision, port),
            self.runtime.log_dir / f"{self.revision.namespace}.{self.revision.name}.log",
        )
        self.instance = instance
        await instance.start()
        return instance

    async def _probe_startup(self, instance: Instance) -> tuple[bool, str]:
        probe = self.startup
        await asyncio.sleep(probe.initial_delay)
        failures = 0
        while True:
            started = time.monotonic()
            if instance.exited:
                return False, (
                    "The user-provided container failed to start and listen on the port defined by the PORT "
                    "environment variable: the process exited."
                )
            if await self._probe(instance, probe, startup=True):
                return True, ""
            failures += 1
            if failures >= probe.failure_threshold:
                return False, "The user-provided container failed the configured startup probe checks."
            await asyncio.sleep(max(0.0, probe.period - (time.monotonic() - started)))

    async def _until_unhealthy(self, instance: Instance) -> None:
        if instance.process is None:
            return
        exited = asyncio.ensure_future(instance.process.wait())
        try:
            if self.liveness is None:
                await exited
                return
            probe = self.liveness
            failures = 0
            while not exited.done():
                await asyncio.wait([exited], timeout=probe.period)
                if exited.done():
                    return
                failures = 0 if await self._probe(instance, probe, startup=False) else failures + 1
                if failures >= probe.failure_threshold:
                    return
        finally:
            exited.cancel()

    async def _probe(self, instance: Instance, probe: Probe, *, startup: bool) -> bool:
        if probe.path is None:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", instance.port), probe.timeout)
            except (OSError, TimeoutError):
                return False
            writer.close()
            return True
        if startup and self.behaviour.startup_probe_fails:
            return False
        try:
            async with self.runtime.session.get(
                f"http://127.0.0.1:{instance.port}{probe.path}", timeout=aiohttp.ClientTimeout(total=probe.timeout)
            ) as response:
                await response.read()
                return 200 <= response.status < 400
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def handle(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        """One user request: wait for an instance, inject the image's faults, forward."""
        self.in_flight += 1
        try:
            return await self._handle(method, path, headers, body)
        finally:
            self.in_flight -= 1
            self.last_request = time.monotonic()

    async def _handle(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        try:
            await asyncio.wait_for(self.serving.wait(), self.timeout)
        except TimeoutError:
            return Reply.text(503, "Service Unavailable: no instance became available in time.")
        self.requests += 1
        number = self.requests
        if self.behaviour.fails(number):
            return Reply.text(500, "Internal Server Error (injected by the rehearsal)")
        instance = self.instance
        if instance is None:
            return Reply.text(503, "Service Unavailable: no instance.")
        started = time.monotonic()
        try:
            reply = await self._forward(instance, method, path, headers, body)
        except TimeoutError:
            return Reply.text(504, "Gateway Timeout: the instance did not answer within timeoutSeconds.")
        except aiohttp.ClientError:
            return Reply.text(503, "Service Unavailable: the connection to the instance had an error.")
        if self.behaviour.slowdown > 1:
            await asyncio.sleep((time.monotonic() - started) * (self.behaviour.slowdown - 1))
        if self.behaviour.crash_after_requests is not None and number >= self.behaviour.crash_after_requests:
            instance.kill()
        return reply

    async def _forward(
        self, instance: Instance, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> Reply:
        return await forward(
            self.runtime.session, method, f"http://127.0.0.1:{instance.port}{path}", headers, body, seconds=self.timeout
        )


async def forward(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    seconds: float | None = None,
    keep_host: bool = False,
) -> Reply:
    """One request passed on as a proxy passes it: without the headers that belong to either connection."""
    dropped = HOP_BY_HOP if keep_host else HOP_BY_HOP | {"host"}
    outgoing = [(name, value) for name, value in headers if name.lower() not in dropped]
    async with session.request(
        method,
        url,
        headers=outgoing,
        data=body or None,
        timeout=aiohttp.ClientTimeout(total=seconds),
        allow_redirects=False,
    ) as response:
        content = await response.read()
        kept = [
            (name, value)
            for name, value in response.headers.items()
            if name.lower() not in HOP_BY_HOP | {"content-length", "date", "server"}
        ]
        return Reply(response.status, kept, content)


class RevisionRuntime:
    """Every revision's instance, for the controller (deploy, readiness) and the router (requests)."""

    def __init__(self, registry: Registry, environment: Environment, log_dir: Path, on_ready: ReadyCallback) -> None:
        self.registry = registry
        self.environment = environment
        self.log_dir = log_dir
        self._on_ready = on_ready
        self.running: dict[tuple[str, str], RunningRevision] = {}
        self.keep: set[tuple[str, str]] = set()
        """The revisions that have traffic or a tag, as of the latest change."""
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, force_close=False), auto_decompress=False
            )
        return self._session

    def deploy(self, revision: Revision) -> None:
        image: str = revision.container["image"]
        behaviour = self.registry.behaviour(image)
        if behaviour is None:
            self._on_ready(revision.namespace, revision.name, False, "ImageNotFound", f"Image '{image}' not found.")
            return
        running = RunningRevision(self, revision, behaviour)
        self.running[running.key] = running
        running.task = asyncio.get_running_loop().create_task(running.run())

    def report(self, running: RunningRevision, *, ready: bool, reason: str, message: str) -> None:
        self._on_ready(running.revision.namespace, running.revision.name, ready, reason, message)
        if not ready:
            self.running.pop(running.key, None)

    def revision(self, namespace: str, name: str) -> RunningRevision | None:
        return self.running.get((namespace, name))

    async def retain(self, keep: set[tuple[str, str]]) -> None:
        """Stop the instances of revisions that can no longer receive requests (no traffic, no tag), once drained.

        Cloud Run lets requests in flight finish; so does this, and it waits a little longer for requests the
        router sent just before the change.
        """
        self.keep = keep
        while idle := [key for key, running in self.running.items() if key not in self.keep and running.deployed]:
            for key in idle:
                running = self.running.get(key)
                if running and running.in_flight == 0 and time.monotonic() - running.last_request >= DRAIN_SECONDS:
                    await self.stop(key)
            await asyncio.sleep(0.5)

    async def stop(self, key: tuple[str, str]) -> None:
        running = self.running.pop(key, None)
        if running is not None and running.task is not None:
            running.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running.task

    async def close(self) -> None:
        for key in list(self.running):
            await self.stop(key)
        if self._session is not None:
            await self._session.close()
