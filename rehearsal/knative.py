"""Cloud Run Admin API v1 resources (Knative serving): services, their revisions, and the controller that
reconciles a service's desired state (spec) into its observed state (status).

Written from the API reference and gcloud's generated message classes
(googlecloudsdk/generated_clients/apis/run/v1/run_v1_messages.py):

- `metadata.generation` counts changes of the spec; `metadata.resourceVersion` changes with every write and,
  when a replace sends it back stale, the write is refused with 409 (optimistic concurrency);
- a new revision is stamped out whenever `spec.template` changes, named by `spec.template.metadata.name`
  (which must start with the service's name) or, without one, `<service>-<generation>-<suffix>`;
- `spec.traffic` is what the client asked for, `status.traffic` what serves: a target that names a revision
  that is missing or not Ready leaves `status.traffic` as it was, with `RoutesReady` False or Unknown;
- `status.observedGeneration` says which generation the conditions describe: `Ready` is True when
  `ConfigurationsReady` (the latest created revision is Ready) and `RoutesReady` are, False when either is.

Everything here runs on the stand-in's event loop thread; the revision runtime reports readiness back.
"""

import base64
import copy
import itertools
import re
import secrets
import string
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from rehearsal.api import ApiError, Json, invalid

API_VERSION = "serving.knative.dev/v1"
SERVICE_LABEL = "serving.knative.dev/service"
CONFIGURATION_LABEL = "serving.knative.dev/configuration"
CONFIGURATION_GENERATION_LABEL = "serving.knative.dev/configurationGeneration"
LOCATION_LABEL = "cloud.googleapis.com/location"
# Cloud Run: "must begin with a letter, ... up to 49 characters" for services; DNS labels for tags.
SERVICE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,47}[a-z0-9])?")
RESOURCE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


ServiceKey = tuple[str, str]
"""(namespace, service name); the namespace is the project."""


class Hooks(Protocol):
    """What the controller needs from the rest of the stand-in: URLs to hand out, revisions to run."""

    def service_url(self, key: ServiceKey) -> str: ...

    def tag_url(self, key: ServiceKey, tag: str) -> str: ...

    def revision_created(self, revision: "Revision") -> None: ...

    def traffic_changed(self, service: "Service") -> None: ...


@dataclass
class Revision:
    namespace: str
    service: str
    body: Json
    template: Json
    """The service's spec.template it was stamped out from."""
    ready: bool | None = None
    """None while the revision's first instance has not passed its startup probe nor failed it."""

    @property
    def name(self) -> str:
        name: str = self.body["metadata"]["name"]
        return name

    @property
    def container(self) -> Json:
        container: Json = self.body["spec"]["containers"][0]
        return container


@dataclass
class Service:
    namespace: str
    name: str
    body: Json
    revisions: list[str] = field(default_factory=list)
    """Names of the revisions this service stamped out, oldest first."""
    template: Json | None = None
    """The template the newest revision was made from."""

    @property
    def key(self) -> ServiceKey:
        return (self.namespace, self.name)

    @property
    def generation(self) -> int:
        generation: int = self.body["metadata"]["generation"]
        return generation

    def status_traffic(self) -> list[Json]:
        traffic: list[Json] = self.body.get("status", {}).get("traffic", [])
        return traffic


_versions = itertools.count(1)


def next_resource_version() -> str:
    """Opaque, as the reference requires clients to treat it; unique for the life of the stand-in."""
    return base64.urlsafe_b64encode(next(_versions).to_bytes(8, "big")).decode().rstrip("=")


def condition(kind: str, ready: bool | None, reason: str = "", message: str = "", since: str = "") -> Json:
    entry: Json = {
        "type": kind,
        "status": "Unknown" if ready is None else str(ready),
        "lastTransitionTime": since or timestamp(),
    }
    if reason:
        entry["reason"] = reason
    if message:
        entry["message"] = message
    return entry


def merge_conditions(previous: Iterable[Json], current: list[Json]) -> list[Json]:
    """Keep lastTransitionTime for conditions whose status did not change."""
    before = {entry["type"]: entry for entry in previous}
    for entry in current:
        old = before.get(entry["type"])
        if old is not None and old["status"] == entry["status"]:
            entry["lastTransitionTime"] = old["lastTransitionTime"]
    return current


def validate_traffic(traffic: list[Json]) -> None:
    """Admission checks of spec.traffic, as the reference states them for TrafficTarget."""
    total = 0
    tags: set[str] = set()
    for index, target in enumerate(traffic):
        where = f"spec.traffic[{index}]"
        if not isinstance(target, dict):
            raise invalid(f"{where}: a traffic target must be an object")
        unknown = set(target) - {"revisionName", "latestRevision", "percent", "tag", "configurationName", "url"}
        if unknown:
            raise invalid(f"{where}: unknown fields {sorted(unknown)}")
        if target.get("configurationName"):
            raise invalid(f"{where}.configurationName: not supported in Cloud Run; it must be empty")
        if target.get("url"):
            raise invalid(f"{where}.url: output only, disallowed on spec")
        if target.get("revisionName") and target.get("latestRevision"):
            raise invalid(f"{where}: latestRevision must be false when revisionName is set")
        percent = target.get("percent", 0)
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise invalid(f"{where}.percent: must be an integer from 0 to 100, got {percent!r}")
        total += percent
        if tag := target.get("tag"):
            if not RESOURCE_NAME.fullmatch(tag):
                raise invalid(f"{where}.tag: {tag!r} is not a lowercase DNS label")
            if tag in tags:
                raise invalid(f"{where}.tag: multiple definitions for tag {tag!r}")
            tags.add(tag)
    if total != 100:
        raise invalid(f"spec.traffic: traffic targets sum to {total}, want 100")


def normalized_spec(spec: Json) -> Json:
    """The spec as stored: traffic defaults to 100 % on the latest ready revision, latestRevision made explicit."""
    stored = copy.deepcopy(spec)
    traffic = stored.get("traffic") or [{"latestRevision": True, "percent": 100}]
    for target in traffic:
        if not target.get("revisionName"):
            target["latestRevision"] = True
        elif "latestRevision" in target:
            del target["latestRevision"]
        if not target.get("tag"):
            target.pop("tag", None)
    stored["traffic"] = traffic
    return stored


def template_identity(template: Json) -> Json:
    """What makes two templates the same revision: everything but the revision's own name."""
    identity = copy.deepcopy(template)
    identity.get("metadata", {}).pop("name", None)
    return identity


def generated_suffix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(3))


class CloudRun:
    """The services and revisions of one region, and their controller."""

    def __init__(self, region: str, hooks: Hooks, schedule: Callable[[Callable[[], None]], None]) -> None:
        self.region = region
        self._hooks = hooks
        self._schedule = schedule
        self.services: dict[ServiceKey, Service] = {}
        self.revisions: dict[tuple[str, str], Revision] = {}

    # -- services

    def knows(self, namespace: str) -> bool:
        """A project exists for the stand-in once it has a service."""
        return any(space == namespace for space, _ in self.services)

    def get_service(self, namespace: str, name: str) -> Json:
        return copy.deepcopy(self._service(namespace, name).body)

    def list_services(self, namespace: str) -> Json:
        items = [copy.deepcopy(one.body) for key, one in sorted(self.services.items()) if key[0] == namespace]
        return {"apiVersion": API_VERSION, "kind": "ServiceList", "metadata": {}, "items": items}

    def create_service(self, namespace: str, body: Json, *, dry_run: bool = False) -> Json:
        metadata, spec = self._checked(namespace, body)
        name = metadata.get("name", "")
        if not SERVICE_NAME.fullmatch(name):
            raise invalid(f"metadata.name: {name!r} must be lowercase letters, digits and hyphens, up to 49")
        if (namespace, name) in self.services:
            raise ApiError(409, "ALREADY_EXISTS", f"Resource '{name}' already exists.")
        service = Service(namespace, name, {})
        stored_spec = normalized_spec(spec)
        self._admit_template(service, stored_spec, generation=1)
        if dry_run:
            return self._object(service, metadata, stored_spec, generation=1)
        service.body = self._object(service, metadata, stored_spec, generation=1)
        service.body["metadata"]["creationTimestamp"] = timestamp()
        self.services[service.key] = service
        self._stamp_revision(service)
        self._schedule(lambda: self.reconcile(service.key))
        return copy.deepcopy(service.body)

    def replace_service(self, namespace: str, name: str, body: Json, *, dry_run: bool = False) -> Json:
        service = self._service(namespace, name)
        metadata, spec = self._checked(namespace, body)
        if metadata.get("name", name) != name:
            raise invalid(f"metadata.name {metadata.get('name')!r} does not match the service in the path, {name!r}")
        sent_version = metadata.get("resourceVersion")
        current_version = service.body["metadata"]["resourceVersion"]
        if sent_version and sent_version != current_version:
            raise ApiError(
                409,
                "ABORTED",
                f"Conflict for resource '{name}': version '{sent_version}' was specified but current version "
                f"is '{current_version}'.",
            )
        stored_spec = normalized_spec(spec)
        changed = stored_spec != service.body["spec"]
        generation = service.generation + 1 if changed else service.generation
        self._admit_template(service, stored_spec, generation)
        replaced = self._object(service, metadata, stored_spec, generation)
        replaced["metadata"]["creationTimestamp"] = service.body["metadata"]["creationTimestamp"]
        replaced["status"] = copy.deepcopy(service.body.get("status", {}))
        if dry_run:
            return replaced
        service.body = replaced
        self._stamp_revision(service)
        self._schedule(lambda: self.reconcile(service.key))
        return copy.deepcopy(service.body)

    # -- revisions

    def get_revision(self, namespace: str, name: str) -> Json:
        if (revision := self.revisions.get((namespace, name))) is None:
            raise self._not_found("REVISION", name, namespace)
        return copy.deepcopy(revision.body)

    def list_revisions(self, namespace: str, label_selector: str = "") -> Json:
        match = label_matcher(label_selector)
        items = [
            copy.deepcopy(revision.body)
            for (space, _), revision in self.revisions.items()
            if space == namespace and match(revision.body["metadata"].get("labels", {}))
        ]
        return {"apiVersion": API_VERSION, "kind": "RevisionList", "metadata": {}, "items": items}

    def set_revision_ready(self, namespace: str, name: str, ready: bool, reason: str = "", message: str = "") -> None:
        """The runtime's word: the revision's instance passed (or failed) its startup probe."""
        revision = self.revisions[(namespace, name)]
        revision.ready = ready
        status = revision.body["status"]
        status["conditions"] = merge_conditions(
            status["conditions"],
            [
                condition("Ready", ready, reason, message),
                condition("ContainerHealthy", ready, reason, message),
                condition("ResourcesAvailable", True),
            ],
        )
        self._schedule(lambda: self.reconcile((namespace, revision.service)))

    # -- the controller

    def reconcile(self, key: ServiceKey) -> None:
        service = self.services.get(key)
        if service is None:
            return
        status: Json = service.body.setdefault("status", {})
        latest = self.revisions[(service.namespace, service.revisions[-1])]
        status["latestCreatedRevisionName"] = latest.name
        if latest.ready:
            status["latestReadyRevisionName"] = latest.name
        configurations = self._configurations_condition(latest)
        routes, resolved = self._routes(service, status.get("latestReadyRevisionName"))
        before = status.get("traffic")
        if resolved is not None:
            status["traffic"] = resolved
        url = self._hooks.service_url(key)
        status["url"] = url
        status["address"] = {"url": url}
        ready_states = [configurations["status"], routes["status"]]
        if "False" in ready_states:
            failed = configurations if configurations["status"] == "False" else routes
            ready = condition("Ready", False, failed.get("reason", ""), failed.get("message", ""))
        elif ready_states == ["True", "True"]:
            ready = condition("Ready", True)
        else:
            waiting = configurations if configurations["status"] == "Unknown" else routes
            ready = condition("Ready", None, waiting.get("reason", ""), waiting.get("message", ""))
        status["conditions"] = merge_conditions(status.get("conditions", []), [ready, configurations, routes])
        status["observedGeneration"] = service.generation
        if status.get("traffic") != before:
            self._hooks.traffic_changed(service)

    def _configurations_condition(self, latest: Revision) -> Json:
        if latest.ready is None:
            return condition("ConfigurationsReady", None, "Deploying", f"Revision '{latest.name}' is being deployed.")
        if latest.ready:
            return condition("ConfigurationsReady", True)
        cause = next(
            (entry.get("message", "") for entry in latest.body["status"]["conditions"] if entry["type"] == "Ready"), ""
        )
        return condition(
            "ConfigurationsReady",
            False,
            "RevisionFailed",
            f"Revision '{latest.name}' is not ready and cannot serve traffic. {cause}".strip(),
        )

    def _routes(self, service: Service, latest_ready: str | None) -> tuple[Json, list[Json] | None]:
        """RoutesReady, and the traffic that serves once every target resolves to a Ready revision."""
        resolved: list[Json] = []
        waiting: str | None = None
        for target in service.body["spec"]["traffic"]:
            if target.get("latestRevision"):
                if latest_ready is None:
                    latest = self.revisions[(service.namespace, service.revisions[-1])]
                    if latest.ready is False:
                        return self._route_failed(
                            "RevisionFailed", f"Configuration '{service.name}' does not have any ready Revision."
                        ), None
                    waiting = waiting or f"Waiting for Revision '{latest.name}' to be ready."
                    continue
                name = latest_ready
            else:
                name = target["revisionName"]
                revision = self.revisions.get((service.namespace, name))
                if revision is None or revision.service != service.name:
                    return self._route_failed(
                        "RevisionMissing", f"Revision '{name}' referenced in traffic not found."
                    ), None
                if revision.ready is False:
                    return self._route_failed(
                        "RevisionFailed", f"Revision '{name}' is not ready and cannot serve traffic."
                    ), None
                if revision.ready is None:
                    waiting = waiting or f"Waiting for Revision '{name}' to be ready."
                    continue
            entry: Json = {"revisionName": name}
            if target.get("percent"):
                entry["percent"] = target["percent"]
            if target.get("latestRevision"):
                entry["latestRevision"] = True
            if tag := target.get("tag"):
                entry["tag"] = tag
                entry["url"] = self._hooks.tag_url(service.key, tag)
            resolved.append(entry)
        if waiting is not None:
            return condition("RoutesReady", None, "Deploying", waiting), None
        return condition("RoutesReady", True), resolved

    @staticmethod
    def _route_failed(reason: str, message: str) -> Json:
        return condition("RoutesReady", False, reason, message)

    # -- helpers

    def _service(self, namespace: str, name: str) -> Service:
        if (service := self.services.get((namespace, name))) is None:
            raise self._not_found("SERVICE", name, namespace)
        return service

    def _not_found(self, kind: str, name: str, namespace: str) -> ApiError:
        return ApiError(
            404,
            "NOT_FOUND",
            f"Resource '{name}' of kind '{kind}' in region '{self.region}' in project '{namespace}' does not exist.",
        )

    def _checked(self, namespace: str, body: Json) -> tuple[Json, Json]:
        if not isinstance(body, dict):
            raise invalid("the request body must be a Service object")
        if body.get("apiVersion", API_VERSION) != API_VERSION:
            raise invalid(f"apiVersion must be {API_VERSION!r}, got {body.get('apiVersion')!r}")
        if body.get("kind", "Service") != "Service":
            raise invalid(f"kind must be 'Service', got {body.get('kind')!r}")
        metadata = body.get("metadata") or {}
        if metadata.get("namespace", namespace) != namespace:
            raise invalid(f"metadata.namespace {metadata.get('namespace')!r} does not match the project {namespace!r}")
        spec = body.get("spec") or {}
        containers = spec.get("template", {}).get("spec", {}).get("containers") or []
        if len(containers) != 1 or not containers[0].get("image"):
            raise invalid("spec.template.spec.containers: exactly one container with an image is required")
        validate_traffic(spec.get("traffic") or [{"latestRevision": True, "percent": 100}])
        return metadata, spec

    def _admit_template(self, service: Service, spec: Json, generation: int) -> None:
        """Name the revision the template stands for; refuse a reused name with a different template."""
        template = spec["template"]
        template_metadata = template.setdefault("metadata", {})
        name = template_metadata.get("name")
        if name is None:
            if service.template is not None and template_identity(template) == template_identity(service.template):
                template_metadata["name"] = service.template["metadata"]["name"]
                return
            name = f"{service.name}-{generation:05d}-{generated_suffix()}"
            template_metadata["name"] = name
        if not name.startswith(f"{service.name}-") or not RESOURCE_NAME.fullmatch(name):
            raise invalid(
                f"spec.template.metadata.name: {name!r} must be prefixed by the name of the enclosing Service "
                f"with a trailing -, in lowercase letters, digits and hyphens"
            )
        existing = self.revisions.get((service.namespace, name))
        if existing is not None and (
            existing.service != service.name or template_identity(existing.template) != template_identity(template)
        ):
            raise ApiError(
                409, "ALREADY_EXISTS", f"Revision named '{name}' with different configuration already exists."
            )

    def _object(self, service: Service, metadata: Json, spec: Json, generation: int) -> Json:
        namespace, name = service.key
        return {
            "apiVersion": API_VERSION,
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "selfLink": f"/apis/{API_VERSION}/namespaces/{namespace}/services/{name}",
                "uid": service.body.get("metadata", {}).get("uid") or str(uuid.uuid4()),
                "generation": generation,
                "resourceVersion": next_resource_version(),
                "labels": {**metadata.get("labels", {}), LOCATION_LABEL: self.region},
                "annotations": dict(metadata.get("annotations", {})),
            },
            "spec": spec,
            "status": copy.deepcopy(service.body.get("status", {})),
        }

    def _stamp_revision(self, service: Service) -> None:
        template = service.body["spec"]["template"]
        name = template["metadata"]["name"]
        if (service.namespace, name) in self.revisions:
            return
        generation = service.generation
        metadata = template.get("metadata", {})
        spec: Json = {"containerConcurrency": 80, "timeoutSeconds": 300, **copy.deepcopy(template.get("spec", {}))}
        image: str = spec["containers"][0]["image"]
        body: Json = {
            "apiVersion": API_VERSION,
            "kind": "Revision",
            "metadata": {
                "name": name,
                "namespace": service.namespace,
                "selfLink": f"/apis/{API_VERSION}/namespaces/{service.namespace}/revisions/{name}",
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "resourceVersion": next_resource_version(),
                "creationTimestamp": timestamp(),
                "labels": {
                    **metadata.get("labels", {}),
                    SERVICE_LABEL: service.name,
                    CONFIGURATION_LABEL: service.name,
                    CONFIGURATION_GENERATION_LABEL: str(generation),
                    LOCATION_LABEL: self.region,
                },
                "annotations": dict(metadata.get("annotations", {})),
                "ownerReferences": [
                    {
                        "kind": "Configuration",
                        "name": service.name,
                        "apiVersion": API_VERSION,
                        "controller": True,
                        "blockOwnerDeletion": True,
                        "uid": service.body["metadata"]["uid"],
                    }
                ],
            },
            "spec": spec,
            "status": {
                "observedGeneration": 1,
                "conditions": [
                    condition("Ready", None, "Deploying", "Deploying revision."),
                    condition("ContainerHealthy", None),
                    condition("ResourcesAvailable", None),
                ],
                **({"imageDigest": image} if "@sha256:" in image else {}),
            },
        }
        revision = Revision(service.namespace, service.name, body, copy.deepcopy(template))
        self.revisions[(service.namespace, name)] = revision
        service.revisions.append(name)
        service.template = copy.deepcopy(template)
        self._hooks.revision_created(revision)


def label_matcher(selector: str) -> Callable[[Mapping[str, str]], bool]:
    """labelSelector of revisions.list: comma-separated `k=v`, `k==v`, `k!=v`, `k` (exists), `!k`, `k in (a,b)`."""
    clauses = [label_clause(part.strip()) for part in re.split(r",(?![^()]*\))", selector) if part.strip()]
    return lambda labels: all(clause(labels) for clause in clauses)


def label_clause(text: str) -> Callable[[Mapping[str, str]], bool]:
    if found := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", text):
        key, inside, values = found[1], found[2] == "in", {value.strip() for value in found[3].split(",")}
        return lambda labels: (labels.get(key) in values) == inside
    if found := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", text):
        key, equal, value = found[1], found[2] != "!=", found[3]
        return lambda labels: (labels.get(key) == value) == equal
    if found := re.fullmatch(r"(!?)([\w./-]+)", text):
        negated, key = found[1] == "!", found[2]
        return lambda labels: (key in labels) != negated
    raise invalid(f"labelSelector: cannot parse {text!r}")
