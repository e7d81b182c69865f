"""The stand-in's front end: the HTTP proxy gcloud is pointed at, routing each request by its host.

gcloud 528 reaches it with CLOUDSDK_PROXY_TYPE=http, CLOUDSDK_PROXY_ADDRESS and CLOUDSDK_PROXY_PORT, so every
call it makes arrives here in proxy form. CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN=http://run.local/ makes the Cloud
Run calls `http://<region>-run.local/...` (gcloud prefixes the region), and
CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=http://storage.local/ the Cloud Storage ones. Any other host, method or
path is a request no stand-in understands: it is answered 501 with its name and reported to the test.

The Cloud Run Admin API v1 methods served are the ones gcloud uses for `run deploy`, `services describe`,
`services update-traffic`, `services replace` and `revisions describe/list`: namespaces.services get, list,
create and replaceService, namespaces.revisions get and list, and projects.locations.services
testIamPermissions (which `run deploy` asks before creating a service; IAM is not modelled, so every
permission asked is granted).
"""

import hashlib
import json
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from rehearsal.api import ApiError, Json, NotModelled, invalid
from rehearsal.cloud_build import Builds
from rehearsal.knative import API_VERSION, CloudRun
from rehearsal.storage import STORAGE_HOST, StorageFront

RUN_HOST_SUFFIX = "-run.local"
RESOURCE_MANAGER_HOST = "cloudresourcemanager.local"
CLOUD_BUILD_HOST = "cloudbuild.local"
KNATIVE = rf"/apis/{re.escape(API_VERSION)}/namespaces/(?P<namespace>[^/]+)"
V1 = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)"
QUERY = {"alt", "dryRun", "labelSelector"}


def project_number(project: str) -> str:
    """A stable, made-up project number: twelve digits from the id."""
    return str(int(hashlib.sha256(project.encode()).hexdigest(), 16) % 10**12).rjust(12, "1")


Handler = Callable[[CloudRun, re.Match[str], web.Request, Json | None], Json]


def _dry_run(request: web.Request) -> bool:
    value = request.rel_url.query.get("dryRun")
    if value not in (None, "all"):
        raise invalid(f"dryRun: the only supported value is 'all', got {value!r}")
    return value == "all"


def _body(body: Json | None) -> Json:
    if body is None:
        raise invalid("a request body is required")
    return body


ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (
        "GET",
        re.compile(KNATIVE + r"/services/(?P<name>[^/]+)"),
        lambda run, m, r, b: run.get_service(m["namespace"], m["name"]),
    ),
    ("GET", re.compile(KNATIVE + r"/services"), lambda run, m, r, b: run.list_services(m["namespace"])),
    (
        "POST",
        re.compile(KNATIVE + r"/services"),
        lambda run, m, r, b: run.create_service(m["namespace"], _body(b), dry_run=_dry_run(r)),
    ),
    (
        "PUT",
        re.compile(KNATIVE + r"/services/(?P<name>[^/]+)"),
        lambda run, m, r, b: run.replace_service(m["namespace"], m["name"], _body(b), dry_run=_dry_run(r)),
    ),
    (
        "GET",
        re.compile(KNATIVE + r"/revisions/(?P<name>[^/]+)"),
        lambda run, m, r, b: run.get_revision(m["namespace"], m["name"]),
    ),
    (
        "GET",
        re.compile(KNATIVE + r"/revisions"),
        lambda run, m, r, b: run.list_revisions(m["namespace"], r.rel_url.query.get("labelSelector", "")),
    ),
    (
        "POST",
        re.compile(V1 + r"/services/(?P<name>[^/:]+):testIamPermissions"),
        lambda run, m, r, b: {"permissions": list(_body(b).get("permissions", []))},
    ),
]


class Front:
    def __init__(
        self,
        cloud_run: CloudRun,
        storage: StorageFront,
        builds: Builds,
        not_understood: Callable[[str], None],
    ) -> None:
        self._cloud_run = cloud_run
        self._builds = builds
        self._storage = storage
        self._not_understood = not_understood
        self.calls: list[str] = []
        """Every request, as `METHOD host path`, for tests that check what gcloud did."""
        self.after_read: dict[str, Callable[[], None]] = {}
        """Per project, a write to make right after the next read of a service is answered: a race, on purpose."""

    def app(self) -> web.Application:
        @web.middleware
        async def tunnels(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            # HTTPS through the proxy arrives as CONNECT host:443, which no route matches: a call to a real
            # Google endpoint that no override points here.
            if request.method == "CONNECT":
                return self._refuse(f"CONNECT {request.rel_url}", "an HTTPS call to a Google API no stand-in serves")
            return await handler(request)

        app = web.Application(client_max_size=10 * 1024 * 1024, middlewares=[tunnels])
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    def _refuse(self, name: str, why: str) -> web.Response:
        message = f"the rehearsal does not model {name}: {why}"
        self._not_understood(message)
        # 400, not 501: gcloud retries 5xx answers for half a minute before it gives up.
        return web.json_response(ApiError(400, "INVALID_ARGUMENT", message).body(), status=400)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        host = request.host.split(":")[0]
        name = f"{request.method} {host}{request.rel_url.path_qs}"
        self.calls.append(name)
        try:
            return await self._route(host, request)
        except NotModelled as unknown:
            return self._refuse(name, str(unknown))

    async def _route(self, host: str, request: web.Request) -> web.StreamResponse:
        if host == f"{self._cloud_run.region}{RUN_HOST_SUFFIX}":
            return await self._cloud_run_api(request)
        if host == STORAGE_HOST:
            return await self._storage.handle(request)
        if host == RESOURCE_MANAGER_HOST:
            return self._resource_manager(request)
        if host == CLOUD_BUILD_HOST:
            return self._cloud_build(request)
        raise NotModelled(f"no stand-in serves the host {host!r}")

    def _cloud_build(self, request: web.Request) -> web.Response:
        """builds.get of the Cloud Build API v1, which the rollout step asks through `gcloud builds describe`."""
        found = re.fullmatch(r"/v1/projects/([^/]+)/locations/([^/]+)/builds/([^/]+)", request.rel_url.path)
        if request.method != "GET" or found is None or set(request.rel_url.query) - {"alt"}:
            raise NotModelled("only Cloud Build v1 projects.locations.builds.get is modelled")
        try:
            return web.json_response(self._builds.get(found[1], found[3]))
        except ApiError as error:
            return web.json_response(error.body(), status=error.code)

    def _resource_manager(self, request: web.Request) -> web.Response:
        """projects.get of Resource Manager v1, which `gcloud run services replace` asks for the project number."""
        found = re.fullmatch(r"/v1/projects/([a-z][-a-z0-9]{4,28}[a-z0-9])", request.rel_url.path)
        if request.method != "GET" or found is None or set(request.rel_url.query) - {"alt"}:
            raise NotModelled("only Resource Manager v1 projects.get is modelled")
        project = found[1]
        if not self._cloud_run.knows(project):
            error = ApiError(403, "PERMISSION_DENIED", f"The caller does not have permission (project {project})")
            return web.json_response(error.body(), status=403)
        return web.json_response(
            {
                "projectId": project,
                "projectNumber": project_number(project),
                "name": project,
                "lifecycleState": "ACTIVE",
            }
        )

    async def _cloud_run_api(self, request: web.Request) -> web.Response:
        path = request.rel_url.path
        if unknown := sorted(set(request.rel_url.query) - QUERY):
            raise NotModelled(f"query parameters {unknown}")
        if (alt := request.rel_url.query.get("alt", "json")) != "json":
            raise NotModelled(f"alt={alt}")
        route = next(
            (
                (match, handler)
                for method, pattern, handler in ROUTES
                if request.method == method and (match := pattern.fullmatch(path))
            ),
            None,
        )
        if route is None:
            raise NotModelled("no such Cloud Run Admin API v1 method")
        match, handler = route
        if "region" in match.groupdict() and match["region"] != self._cloud_run.region:
            raise NotModelled(f"region {match['region']} (the stand-in serves {self._cloud_run.region})")
        try:
            raw = await request.read()
            body = json.loads(raw) if raw else None
            if body is not None and not isinstance(body, dict):
                raise invalid("the request body must be a JSON object")
            answer = handler(self._cloud_run, match, request, body)
            reads_a_service = request.method == "GET" and "/services/" in path
            if reads_a_service and (write := self.after_read.pop(match["namespace"], None)) is not None:
                write()
        except json.JSONDecodeError as error:
            answer_error = invalid(f"the request body is not JSON: {error}")
            return web.json_response(answer_error.body(), status=answer_error.code)
        except ApiError as error:
            return web.json_response(error.body(), status=error.code)
        return web.json_response(answer)
