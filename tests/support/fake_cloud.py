"""In-memory stand-ins for what the rollout talks to: Cloud Run behind gcloud, scripted Cloud Monitoring, a
synthetic load that only counts, and a clock that jumps.

FakeCloudRun is written from the Cloud Run Admin API v1 reference (the generated messages in gcloud 528:
googlecloudsdk/generated_clients/apis/run/v1/run_v1_messages.py) and from what gcloud 528's client does
(command_lib/run/serverless_operations.py, config_changes.py, api_lib/run/traffic.py), never from deploy/:

- spec.traffic is what was asked for, status.traffic what is served. A write whose traffic names a revision
  that is not ready leaves status.traffic as it was, with RoutesReady False.
- Ready is True only when ConfigurationsReady (the latest created revision is ready) and RoutesReady are.
- metadata.generation rises with every change to spec; resourceVersion with every write. A PUT carrying a
  resourceVersion that is not the current one is refused with 409 (ObjectMeta.resourceVersion: "May be used for
  optimistic concurrency"); one without it is not checked.
- replaceService (`PUT .../apis/serving.knative.dev/v1/namespaces/{project id or number}/services/{name}` at
  the regional endpoint) answers the object as stored, before Cloud Run has worked on it: status, and its
  observedGeneration, are the previous ones until a later read ("Cloud Run will work to make the 'status' match
  the requested 'spec'"; clients poll until observedGeneration = metadata.generation).
- gcloud's writes are GET, change, PUT with the resourceVersion of that GET, then a wait on the Ready
  condition: a write that leaves Ready False fails the command, even though the write itself stands.
  `deploy --tag` writes the tag into spec.traffic in the same PUT as the new template (TagOnDeployChange), and
  `--no-traffic` pins LATEST to the latest ready revision (NoTrafficChange).
It is driven exactly as gcloud and the Admin API are: as a Runner of gcloud argv, and as an Api of REST calls, so
the rollout's real adapters run against it.
"""

import copy
import itertools
import json
import re
import shlex
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from deploy.cloud_run import CloudRunAdmin, Polling
from deploy.gcloud import GcloudError
from deploy.google_api import ApiError
from deploy.metrics import Percentile, RequestStats, Window

PROJECT_NUMBER = "123456789012"
SERVICE_PATH = re.compile(r"/apis/serving\.knative\.dev/v1/namespaces/(?P<namespace>[^/]+)/services/(?P<name>[^/]+)")
# google.rpc.Code of each HTTP status the fake answers with.
RPC_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED"}
NOT_READY = (
    "Revision '{}' is not ready and cannot serve traffic. The user-provided container failed to start and listen on "
    "the port defined provided by the PORT=8080 environment variable within the allocated timeout."
)


class Unmodelled(BaseException):
    """A gcloud call the fake does not model: the test fails, and no `except Exception` can hide it."""


@dataclass
class Revision:
    name: str
    image: str
    labels: dict[str, str]
    ready: bool
    template: dict[str, Any]


def _flags(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    positional, flags = [], {}
    for word in argv:
        if word.startswith("--"):
            name, _, value = word[2:].partition("=")
            flags[name] = value
        else:
            positional.append(word)
    return positional, flags


def _pairs(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split(",") if pair)


@dataclass
class FakeCloudRun:
    """One Cloud Run service, as the Admin API v1 keeps it, answering gcloud commands."""

    service: str
    project: str = "p"
    region: str = "europe-west1"
    never_ready_images: set[str] = field(default_factory=set)
    """Images whose revisions fail their startup probe: they never become ready."""
    revisions: dict[str, Revision] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    """One line per gcloud command (its words up to the first flag) and per API call (its method and service)."""
    puts: list[dict[str, Any]] = field(default_factory=list)
    before_command: Callable[["FakeCloudRun", Sequence[str]], None] | None = None
    """Runs when a gcloud command starts, before its first GET: an operator acting between two of our calls."""
    before_put: Callable[["FakeCloudRun", str], None] | None = None
    """Runs just before a PUT is applied, with the gcloud command's name or "replaceService" for an API call:
    a change landing there makes the PUT's resourceVersion stale."""
    fail_after_put: Callable[[str], str | None] = lambda command: None
    """A message to fail the command or call with after its PUT applied (a lost reply, a timeout while waiting)."""
    stale_reads: int = 0
    """How many reads after a replaceService still show the status from before it (its answer always does)."""
    _versions: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1), repr=False)
    _unapplied: tuple[str, int] | None = field(default=None, repr=False)
    """After a replaceService: the latest created revision, and the reads still to show the status from before."""
    document: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def serving(
        cls, service: str, revision: str, image: str = "registry/app@sha256:old", **labels: str
    ) -> "FakeCloudRun":
        """A service whose one revision serves 100 % through a LATEST entry, as Terraform creates it."""
        fake = cls(service)
        template = {"metadata": {"name": revision, "labels": dict(labels)}, "spec": {"containers": [{"image": image}]}}
        fake.document = {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {
                "name": service,
                "namespace": PROJECT_NUMBER,
                "generation": 0,
                "labels": {"cloud.googleapis.com/location": fake.region},
                "annotations": {"serving.knative.dev/creator": "terraform@p.iam.gserviceaccount.com"},
            },
            "spec": {"template": template, "traffic": [{"latestRevision": True, "percent": 100}]},
            "status": {},
        }
        fake._put(copy.deepcopy(fake.document), None)
        fake.calls.clear()
        fake.puts.clear()
        return fake

    # -- the API -----------------------------------------------------------------------------------

    def get(self) -> dict[str, Any]:
        self._observe()
        return copy.deepcopy(self.document)

    def _observe(self) -> None:
        """A read: once `stale_reads` reads have passed since a replaceService, Cloud Run has worked on it."""
        if self._unapplied is None:
            return
        latest_created, stale = self._unapplied
        self._unapplied = (latest_created, stale - 1) if stale else None
        if not stale:
            self._reconcile(latest_created)

    def api(self, method: str, url: str, body: Mapping[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        """The Admin API v1's namespaces.services get and replaceService, at the region's endpoint."""
        parsed = urllib.parse.urlsplit(url)
        found = SERVICE_PATH.fullmatch(parsed.path)
        if (parsed.scheme, parsed.netloc) != ("https", f"{self.region}-run.googleapis.com") or not found:
            raise Unmodelled(f"the fake does not model {method} {url}")
        if parsed.query or method not in ("GET", "PUT") or (body is None) != (method == "GET"):
            raise Unmodelled(f"the fake does not model {method} {url} {'with' if body else 'without'} a body")
        self.calls.append(f"namespaces.services.{'get' if method == 'GET' else 'replaceService'} {found['name']}")
        try:
            return self._service_call(found["namespace"], found["name"], body)
        except HttpError as error:
            raise ApiError(error.status, error.message, RPC_STATUS.get(error.status, "UNKNOWN")) from None

    def _service_call(self, namespace: str, name: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        if namespace not in (self.project, PROJECT_NUMBER) or name != self.service:
            raise HttpError(404, f"Resource '{name}' of kind 'SERVICE' in project '{namespace}' does not exist.")
        return self.get() if body is None else self._replace_service(dict(body))

    def _replace_service(self, body: dict[str, Any]) -> dict[str, Any]:
        metadata = body.get("metadata", {})
        if (body.get("apiVersion"), body.get("kind")) != ("serving.knative.dev/v1", "Service"):
            raise HttpError(400, "the body must be a serving.knative.dev/v1 Service")
        if metadata.get("name") != self.service or metadata.get("namespace", self.project) not in (
            self.project,
            PROJECT_NUMBER,
        ):
            raise HttpError(400, "metadata.name and metadata.namespace must name the service of the path")
        if self.before_put is not None:
            self.before_put(self, "replaceService")
        body.pop("status", None)  # output only
        self._put(body, metadata.get("resourceVersion"), apply=False)
        answer = copy.deepcopy(self.document)
        if message := self.fail_after_put("replaceService"):
            raise ApiError(None, message)
        return answer

    def _put(self, body: dict[str, Any], resource_version: str | None, apply: bool = True) -> None:
        """replaceService: 409 on a stale resourceVersion; a new revision for a new template; then reconcile,
        at once (`apply`, gcloud having waited for it) or over the next reads."""
        current = self.document["metadata"].get("resourceVersion")
        if resource_version is not None and current is not None and resource_version != current:
            raise HttpError(
                409,
                f"Conflict for resource '{self.service}': version '{resource_version}' was specified but current "
                f"version is '{current}'.",
            )
        self.puts.append(copy.deepcopy(body))
        spec = body["spec"]
        percents = sum(int(entry.get("percent") or 0) for entry in spec.get("traffic", []))
        if spec.get("traffic") and percents != 100:
            raise HttpError(400, f"Traffic targets sum to {percents}, want 100")
        template = spec["template"]
        name = template["metadata"]["name"]
        if name in self.revisions and self.revisions[name].template != template:
            raise HttpError(409, f"Revision named '{name}' with different configuration already exists.")
        if name not in self.revisions:
            image = template["spec"]["containers"][0]["image"]
            labels = dict(template["metadata"].get("labels", {}))
            self.revisions[name] = Revision(name, image, labels, image not in self.never_ready_images, template)
        metadata = self.document["metadata"]
        if spec != self.document["spec"] or "resourceVersion" not in metadata:
            metadata["generation"] += 1
        metadata["resourceVersion"] = f"AAY{next(self._versions):08d}"
        metadata["labels"] = body["metadata"].get("labels", metadata["labels"])
        self.document["spec"] = copy.deepcopy(spec)
        self._unapplied = None if apply else (name, self.stale_reads)
        if apply:
            self._reconcile(name)

    def _reconcile(self, latest_created: str) -> None:
        status = self.document.setdefault("status", {})
        created = self.revisions[latest_created]
        status["latestCreatedRevisionName"] = latest_created
        if created.ready:
            status["latestReadyRevisionName"] = latest_created
        problems = {"ConfigurationsReady": None if created.ready else NOT_READY.format(latest_created)}
        resolved = []
        for entry in self.document["spec"].get("traffic", []):
            revision = entry.get("revisionName") or status.get("latestReadyRevisionName")
            if revision not in self.revisions or not self.revisions[revision].ready:
                problems["RoutesReady"] = NOT_READY.format(revision)
                break
            served = {"revisionName": revision, "percent": int(entry.get("percent") or 0)}
            if entry.get("latestRevision"):
                served["latestRevision"] = True
            if entry.get("tag"):
                served |= {"tag": entry["tag"], "url": self.url_of(entry["tag"])}
            resolved.append(served)
        else:
            problems["RoutesReady"] = None
            status["traffic"] = resolved
            status["url"] = f"https://{self.service}-abc123-ew.a.run.app"
        failing = [message for message in problems.values() if message]
        status["conditions"] = [
            {"type": "Ready", "status": "False" if failing else "True", **({"message": failing[0]} if failing else {})},
            *(
                {"type": kind, "status": "False" if message else "True", **({"message": message} if message else {})}
                for kind, message in problems.items()
            ),
        ]
        status["observedGeneration"] = self.document["metadata"]["generation"]

    def url_of(self, tag: str) -> str:
        return f"https://{tag}---{self.service}-abc123-ew.a.run.app"

    # -- what a test reads -------------------------------------------------------------------------

    def served(self) -> dict[str, int]:
        self._observe()
        return {e["revisionName"]: e["percent"] for e in self.document["status"].get("traffic", []) if e["percent"]}

    def asked(self) -> dict[str, int]:
        latest = self.document["status"].get("latestReadyRevisionName")
        return {
            e.get("revisionName") or latest: int(e["percent"])
            for e in self.document["spec"].get("traffic", [])
            if e.get("percent")
        }

    def spec_tags(self) -> dict[str, str]:
        return {
            e["tag"]: e.get("revisionName", "LATEST") for e in self.document["spec"].get("traffic", []) if e.get("tag")
        }

    def served_tags(self) -> dict[str, str]:
        self._observe()
        return {e["tag"]: e["revisionName"] for e in self.document["status"].get("traffic", []) if e.get("tag")}

    def ready(self) -> bool:
        self._observe()
        return bool(self.document["status"]["conditions"][0]["status"] == "True")

    def traffic_writes(self) -> list[dict[str, int]]:
        """The split of every PUT that changed the split, in order."""
        splits, last = [], None
        for body in self.puts:
            split = {e["revisionName"]: e["percent"] for e in body["spec"].get("traffic", []) if e.get("percent")}
            if split != last:
                splits.append(split)
            last = split
        return splits

    # -- gcloud ------------------------------------------------------------------------------------

    def operator(self, *flags: str) -> None:
        """An operator's `gcloud run services update-traffic SERVICE FLAGS...`."""
        self(["gcloud", "run", "services", "update-traffic", self.service, *flags])

    def __call__(self, command: Sequence[str], stdin: str | None = None) -> str:
        positional, flags = _flags(command[1:])
        self.calls.append(" ".join(positional))
        if self.before_command is not None:
            self.before_command(self, command)
        verb = " ".join(positional[:3]) if positional[:2] == ["run", "services"] else " ".join(positional[:2])
        known = {"project", "region", "quiet", "format"}
        try:
            if verb == "run revisions":
                self._expect(flags, known)
                return self._describe_revision(command, positional[3])
            if verb == "run deploy":
                return self._deploy(command, flags)
            if verb == "run services update-traffic":
                self._expect(flags, known | {"to-revisions", "update-tags", "remove-tags"})
                return self._update_traffic(command, flags)
        except HttpError as error:
            raise GcloudError(command, f"ERROR: ({gcloud_name(command)}) {error.message}\n") from None
        raise Unmodelled(f"the fake does not model {shlex.join(command)}")

    def _expect(self, flags: Mapping[str, str], known: set[str]) -> None:
        if unknown := set(flags) - known:
            raise Unmodelled(f"the fake does not model the flags {sorted(unknown)}")

    def _describe_revision(self, command: Sequence[str], name: str) -> str:
        if name not in self.revisions:
            raise GcloudError(command, f"ERROR: ({gcloud_name(command)}) Cannot find revision [{name}].\n")
        revision = self.revisions[name]
        ready = {"type": "Ready", "status": "True" if revision.ready else "False"}
        return json.dumps({"metadata": {"name": name, "labels": revision.labels}, "status": {"conditions": [ready]}})

    def _write(self, command: Sequence[str], change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """gcloud's write: GET, change, PUT with the GET's resourceVersion, then wait for Ready."""
        read = self.get()
        body = change(read)
        if self.before_put is not None:
            self.before_put(self, gcloud_name(command))
        self._put(body, body["metadata"].get("resourceVersion"))
        if message := self.fail_after_put(gcloud_name(command)):
            raise GcloudError(command, f"ERROR: ({gcloud_name(command)}) {message}\n")
        if not self.ready():
            message = self.document["status"]["conditions"][0]["message"]
            raise GcloudError(command, f"Deployment failed\nERROR: ({gcloud_name(command)}) {message}\n")

    def _deploy(self, command: Sequence[str], flags: Mapping[str, str]) -> str:
        def change(service: dict[str, Any]) -> dict[str, Any]:
            template = copy.deepcopy(service["spec"]["template"])
            template["metadata"]["name"] = f"{self.service}-{flags['revision-suffix']}"
            template["spec"]["containers"][0]["image"] = flags["image"]
            # LabelChanges: service labels are updated and copied onto the template.
            labels = {**service["metadata"].get("labels", {}), **_pairs(flags.get("update-labels", ""))}
            service["metadata"]["labels"] = labels
            template["metadata"]["labels"] = {k: v for k, v in labels.items() if not k.startswith("cloud.googleapis")}
            service["spec"]["template"] = template
            if "no-traffic" in flags:
                _zero_latest(service)
            if "tag" in flags:
                _update_tags(service, {flags["tag"]: template["metadata"]["name"]}, [])
            return service

        self._write(command, change)
        return ""

    def _update_traffic(self, command: Sequence[str], flags: Mapping[str, str]) -> str:
        def change(service: dict[str, Any]) -> dict[str, Any]:
            if "update-tags" in flags or "remove-tags" in flags:
                remove = [tag for tag in flags.get("remove-tags", "").split(",") if tag]
                _update_tags(service, _pairs(flags.get("update-tags", "")), remove)
            if "to-revisions" in flags:
                _update_percentages(service, {k: int(v) for k, v in _pairs(flags["to-revisions"]).items()})
            return service

        self._write(command, change)
        return json.dumps(self.get())


@dataclass
class HttpError(Exception):
    status: int
    message: str


def gcloud_name(command: Sequence[str]) -> str:
    words = [word for word in command[1:] if not word.startswith("-")][:3]
    if words[:2] == ["run", "deploy"]:
        words = words[:2]
    return "gcloud." + ".".join(words)


def _zero_latest(service: dict[str, Any]) -> None:
    """TrafficTargets.ZeroLatestTraffic: a LATEST entry becomes one naming the latest ready revision."""
    latest = service["status"].get("latestReadyRevisionName")
    for entry in service["spec"]["traffic"]:
        if entry.get("latestRevision") and entry.get("percent"):
            entry.pop("latestRevision")
            entry["revisionName"] = latest


def _update_tags(service: dict[str, Any], update: Mapping[str, str], remove: Sequence[str]) -> None:
    """TrafficTargets.UpdateTags: untag the named tags, drop targets left with nothing, add 0 % tag targets."""
    kept = []
    for entry in service["spec"]["traffic"]:
        if entry.get("tag") in remove or entry.get("tag") in update:
            entry.pop("tag")
        if entry.get("percent") or entry.get("tag"):
            kept.append(entry)
    kept += [{"revisionName": revision, "tag": tag} for tag, revision in sorted(update.items())]
    service["spec"]["traffic"] = kept


def _update_percentages(service: dict[str, Any], percentages: Mapping[str, int]) -> None:
    """TrafficTargets.UpdateTraffic for a split that names every revision with traffic (what --to-revisions
    does when it adds up to 100): percent targets replaced, tags moved to 0 % targets."""
    if sum(percentages.values()) != 100:
        raise Unmodelled("the fake models --to-revisions only for splits that add up to 100")
    tags = [
        {"revisionName": e.get("revisionName"), "tag": e["tag"]} for e in service["spec"]["traffic"] if e.get("tag")
    ]
    split = [{"revisionName": name, "percent": percent} for name, percent in sorted(percentages.items()) if percent]
    service["spec"]["traffic"] = split + tags


@dataclass
class ScriptedMetrics:
    """What Cloud Monitoring answers: a function of the revision and the window, every query recorded."""

    answer: Callable[[str, Window], RequestStats]
    queries: list[tuple[str, Window]] = field(default_factory=list)

    def request_stats(self, revision: str, window: Window) -> RequestStats:
        self.queries.append((revision, window))
        return self.answer(revision, window)


@dataclass
class CountingLoad:
    """The synthetic load as the rollout sees it: where it was sent, and `rate` requests a second meanwhile."""

    clock: "JumpingClock"
    rate: float = 2.0
    started: dict[str, str] = field(default_factory=dict)
    running_since: datetime | None = None
    stopped_at: datetime | None = None

    def start(self, targets: Mapping[str, str]) -> None:
        self.started = dict(targets)
        self.running_since, self.stopped_at = self.clock.now(), None

    def stop(self) -> None:
        if self.running_since is not None and self.stopped_at is None:
            self.stopped_at = self.clock.now()

    def sent(self, revision: str, start: datetime, end: datetime) -> int:
        if revision not in self.started or self.running_since is None:
            return 0
        begin, finish = max(start, self.running_since), min(end, self.stopped_at or end)
        return max(0, int((finish - begin).total_seconds() * self.rate))


@dataclass
class JumpingClock:
    """Sleeping moves time forward at once, so an hour-long rollout runs in milliseconds."""

    current: datetime
    sleeps: list[datetime] = field(default_factory=list)
    on_sleep: Callable[[datetime], None] | None = None

    def now(self) -> datetime:
        return self.current

    def sleep_until(self, moment: datetime) -> None:
        self.sleeps.append(moment)
        if self.on_sleep is not None:
            self.on_sleep(moment)
        self.current = max(self.current, moment) + timedelta(seconds=1)


@dataclass
class MinuteMetrics:
    """Cloud Run's request metrics as Monitoring shows them: one point per revision and minute, visible only
    once Cloud Run has sampled it (at the minute's end) and Monitoring has taken it in (up to 180 s later)."""

    clock: JumpingClock
    per_minute: Callable[[str, datetime], tuple[int, int]]
    """Requests and 5xx of the revision in the minute that starts at the given moment."""
    visible_after: timedelta = timedelta(seconds=180)
    p99: Percentile = field(default_factory=lambda: Percentile(120, 64, 128))
    queries: list[tuple[str, Window]] = field(default_factory=list)

    def request_stats(self, revision: str, window: Window) -> RequestStats:
        self.queries.append((revision, window))
        first = window.start.replace(second=0, microsecond=0)
        minutes = [first + timedelta(minutes=index) for index in range(window.seconds // 60 + 1)]
        seen = [
            self.per_minute(revision, minute)
            for minute in minutes
            if window.start <= minute < window.end
            and minute + timedelta(minutes=1) + self.visible_after <= self.clock.now()
        ]
        total, errors = sum(count for count, _ in seen), sum(failed for _, failed in seen)
        return RequestStats(total, errors, self.p99 if total else None, sum(1 for count, _ in seen if count))


def cloud_run_admin(fake: FakeCloudRun, clock: JumpingClock, limit: timedelta = timedelta(seconds=90)) -> CloudRunAdmin:
    """The rollout's Cloud Run adapter, wired to the fake as production wires it to gcloud and to the Admin API."""
    root = f"https://{fake.region}-run.googleapis.com/"
    polling = Polling(clock.now, clock.sleep_until, limit)
    return CloudRunAdmin(fake.project, fake.region, fake.service, fake, api=fake.api, root=root, polling=polling)
