"""In-memory stand-ins for what the rollout talks to: Cloud Run behind gcloud, scripted Cloud Monitoring, a
synthetic load that only counts, and a clock that jumps.

FakeCloudRun is written from the Cloud Run Admin API v1 reference (the generated messages in gcloud 528:
googlecloudsdk/generated_clients/apis/run/v1/run_v1_messages.py) and from what gcloud 528's client does
(command_lib/run/serverless_operations.py, config_changes.py, api_lib/run/traffic.py), never from deploy/:

- spec.traffic is what was asked for, status.traffic what is served. A write whose traffic names a revision
  that is not ready leaves status.traffic as it was, with RoutesReady False.
- Ready is True only when ConfigurationsReady (the latest created revision is ready) and RoutesReady are.
- metadata.generation rises with every change to spec; resourceVersion with every write. A PUT carrying a
  resourceVersion that is not the current one is refused with 409 (ObjectMeta.resourceVersion).
- gcloud's writes are GET, change, PUT with the resourceVersion of that GET, then a wait on the Ready
  condition: a write that leaves Ready False fails the command, even though the write itself stands.
  `services replace` puts the file's object, but with the resourceVersion of its own GET
  (ReplaceServiceChange.Adjust). `deploy --tag` writes the tag into spec.traffic in the same PUT as the new
  template (TagOnDeployChange), and `--no-traffic` pins LATEST to the latest ready revision (NoTrafficChange).
It is driven exactly as gcloud is: as a Runner of gcloud argv, so the rollout's real adapters run against it.
"""

import copy
import itertools
import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml

from deploy.gcloud import GcloudError
from deploy.metrics import Percentile, RequestStats, Window

PROJECT_NUMBER = "123456789012"
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
    """One line per gcloud command: its words up to the first flag."""
    puts: list[dict[str, Any]] = field(default_factory=list)
    before_command: Callable[["FakeCloudRun", Sequence[str]], None] | None = None
    """Runs when a gcloud command starts, before its first GET: an operator acting between two of our calls."""
    before_put: Callable[["FakeCloudRun", str], None] | None = None
    """Runs inside gcloud's GET-then-PUT, with the command's name: a change landing there meets a 409."""
    fail_after_put: Callable[[str], str | None] = lambda command: None
    """A message to fail the command with after its PUT applied (a lost reply, a timeout while waiting)."""
    _versions: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1), repr=False)
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
        return copy.deepcopy(self.document)

    def _put(self, body: dict[str, Any], resource_version: str | None) -> None:
        """replaceService: 409 on a stale resourceVersion; a new revision for a new template; then reconcile."""
        current = self.document["metadata"].get("resourceVersion")
        if resource_version is not None and current is not None and resource_version != current:
            raise HttpError(409, "the object has been modified; please apply your changes to the latest version")
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
        return {e["tag"]: e["revisionName"] for e in self.document["status"].get("traffic", []) if e.get("tag")}

    def ready(self) -> bool:
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
            if verb == "run services describe":
                self._expect(flags, known)
                return json.dumps(self.get())
            if verb == "run revisions":
                self._expect(flags, known)
                return self._describe_revision(command, positional[3])
            if verb == "run deploy":
                return self._deploy(command, flags)
            if verb == "run services update-traffic":
                self._expect(flags, known | {"to-revisions", "update-tags", "remove-tags"})
                return self._update_traffic(command, flags)
            if verb == "run services replace":
                self._expect(flags, known)
                return self._replace(command, stdin or "")
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

    def _replace(self, command: Sequence[str], stdin: str) -> str:
        new = yaml.safe_load(stdin)
        new.pop("status", None)
        namespace = new["metadata"].get("namespace")
        if namespace is not None and namespace not in (self.project, PROJECT_NUMBER):
            raise HttpError(400, f"Namespace must be project ID [{self.project}] or quoted number")

        def change(service: dict[str, Any]) -> dict[str, Any]:
            # ReplaceServiceChange.Adjust: the server's resourceVersion and serving annotations, not the file's.
            new["metadata"]["resourceVersion"] = service["metadata"]["resourceVersion"]
            annotations = new["metadata"].setdefault("annotations", {})
            annotations |= {
                k: v for k, v in service["metadata"].get("annotations", {}).items() if "serving.knative" in k
            }
            return dict(new)

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
