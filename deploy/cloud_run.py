"""The narrow part of Cloud Run the rollout needs: a new revision through gcloud, the rest through the Admin API.

A service is read whole (GET of the Admin API v1's Knative Service): `spec.traffic` is what was asked for,
`status.traffic` what Cloud Run serves. They differ while a change is being applied, and for good when spec
names a revision that never became ready. Traffic and tags are written with replaceService, the object just read
with its traffic edited and its `metadata.resourceVersion` sent back, so that a write on a stale read is refused
(see write_traffic). `gcloud run deploy` makes the candidate revision: it builds the template from flags and waits
for the revision to pass its startup probe. Every call is scoped to one service.
"""

import copy
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from deploy.gcloud import GcloudError, Runner
from deploy.google_api import Api, ApiError, JsonApi
from deploy.revision import RevisionTemplate

Split = Mapping[str, int]
"""Percent of traffic by revision name, revisions with none left out."""
Tags = Mapping[str, str]
"""Revision name by tag."""
SERVICE_PATH = "apis/serving.knative.dev/v1/namespaces/{project}/services/{service}"
"""namespaces.services get and replaceService, relative to the regional endpoint."""


class CloudRunError(Exception):
    """A Cloud Run call failed; the message is gcloud's or the Admin API's."""


class TrafficConflict(CloudRunError):
    """Someone else changed the service after this rollout read it: their change stands."""

    def __init__(self, read: "Service", now: "Service", when: str) -> None:
        super().__init__(
            f"the service went from generation {read.generation} to {now.generation} {when}: someone else changed "
            f"it, and their change stands; it now asks for {describe_split(now.desired_split())}"
        )
        self.now = now


@dataclass(frozen=True)
class Service:
    """One read of the service: the Knative Service object of the Admin API v1."""

    document: Mapping[str, Any]

    @property
    def generation(self) -> int:
        return int(self.document.get("metadata", {}).get("generation", 0))

    @property
    def resource_version(self) -> str | None:
        version: str | None = self.document.get("metadata", {}).get("resourceVersion")
        return version

    @property
    def observed_generation(self) -> int:
        """The generation status describes: a write is applied once this reaches the generation it made."""
        return int(self._status.get("observedGeneration", 0))

    @property
    def _status(self) -> Mapping[str, Any]:
        status: Mapping[str, Any] = self.document.get("status", {})
        return status

    @property
    def latest_ready(self) -> str | None:
        return self._status.get("latestReadyRevisionName")

    @property
    def latest_created(self) -> str | None:
        return self._status.get("latestCreatedRevisionName")

    def _entries(self, part: str) -> list[Mapping[str, Any]]:
        entries: list[Mapping[str, Any]] = self.document.get(part, {}).get("traffic", [])
        return entries

    def _revision(self, entry: Mapping[str, Any]) -> str:
        # A spec entry may say "the latest ready revision" instead of naming one; status always names it.
        name = entry.get("revisionName") or (self.latest_ready if entry.get("latestRevision") else None)
        return name or "LATEST"

    def _split(self, part: str) -> dict[str, int]:
        shares: dict[str, int] = {}
        for entry in self._entries(part):
            if percent := int(entry.get("percent") or 0):
                revision = self._revision(entry)
                shares[revision] = shares.get(revision, 0) + percent
        return shares

    def _tags(self, part: str) -> dict[str, str]:
        return {entry["tag"]: self._revision(entry) for entry in self._entries(part) if entry.get("tag")}

    def split(self) -> dict[str, int]:
        """What serves: status.traffic."""
        return self._split("status")

    def desired_split(self) -> dict[str, int]:
        """What was asked for: spec.traffic."""
        return self._split("spec")

    def tags(self) -> dict[str, str]:
        """The tags asked for (spec.traffic); a tag has a URL only once status.traffic carries it too."""
        return self._tags("spec")

    def tag_url(self, tag: str) -> str | None:
        return next((entry.get("url") for entry in self._entries("status") if entry.get("tag") == tag), None)

    def served_tags(self) -> dict[str, str]:
        """The tags Cloud Run has applied (status.traffic): only these have URLs."""
        return self._tags("status")

    def settled(self) -> bool:
        """Cloud Run serves exactly what spec asks for."""
        return self.desired_split() == self.split() and self.tags() == self.served_tags()

    def condition(self, kind: str) -> Mapping[str, Any]:
        """status.conditions of that type ({} without one): its status is "True", "False" or "Unknown"."""
        found: Mapping[str, Any] = next((c for c in self._status.get("conditions", []) if c.get("type") == kind), {})
        return found

    def ready_message(self) -> str:
        ready = self.condition("Ready")
        return str(ready.get("message") or ready.get("status") or "no Ready condition")

    def with_traffic(self, split: Split, tags: Tags) -> dict[str, Any]:
        """This object as replaceService takes it: traffic and tags replaced, everything else as read.

        metadata.resourceVersion stays, unmodified as the reference asks, and makes the write conditional on this
        read; status is output only and left out.
        """
        document = copy.deepcopy(dict(self.document))
        document.pop("status", None)
        document.setdefault("spec", {})["traffic"] = traffic_entries(split, tags)
        return document


def traffic_entries(split: Split, tags: Tags) -> list[dict[str, Any]]:
    """spec.traffic as gcloud writes it: one entry per revision with traffic, then one 0 % entry per tag."""
    entries: list[dict[str, Any]] = [
        {"revisionName": revision, "percent": percent} for revision, percent in sorted(split.items()) if percent
    ]
    entries += [{"revisionName": revision, "tag": tag} for tag, revision in sorted(tags.items())]
    return entries


@dataclass(frozen=True)
class Candidate:
    revision_suffix: str
    image: str
    tag: str
    service_account: str
    template: RevisionTemplate
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    """The service after a traffic write, and what went wrong that the write survived (a lost answer, a service
    that is not Ready for a reason other than its traffic)."""

    service: Service
    complaint: str | None = None


def split_flag(split: Split) -> str:
    return ",".join(f"{revision}={percent}" for revision, percent in sorted(split.items()))


def describe_split(split: Split) -> str:
    return split_flag(split).replace(",", ", ") or "no traffic"


@dataclass(frozen=True)
class Polling:
    """How long a read, or a write and the wait for Cloud Run to apply it, may take, and how often to look."""

    now: Callable[[], datetime]
    sleep_until: Callable[[datetime], None]
    limit: timedelta
    interval: timedelta = timedelta(seconds=1)


class CloudRunAdmin:
    """Every call the rollout makes to Cloud Run is built here: `gcloud run deploy`, and the Admin API v1's
    namespaces.services get and replaceService at the regional endpoint gcloud is configured with (`root`)."""

    def __init__(
        self, project: str, region: str, service: str, runner: Runner, *, api: Api, root: str, polling: Polling
    ) -> None:
        self.service = service
        self.url = urllib.parse.urljoin(root, SERVICE_PATH.format(project=project, service=service))
        self._scope = [f"--project={project}", f"--region={region}", "--quiet"]
        self._run = runner
        self._api = api
        self._polling = polling

    @classmethod
    def from_gcloud_config(
        cls,
        config: Mapping[str, Any],
        project: str,
        region: str,
        service: str,
        runner: Runner,
        *,
        polling: Polling,
        deadline: datetime,
    ) -> "CloudRunAdmin":
        """The Admin API where gcloud itself would call it, with gcloud's proxy, CA bundle and token."""
        api, connection = JsonApi.from_gcloud_config(config, runner, polling.now, deadline)
        return cls(
            project, region, service, runner, api=api, root=connection.regional_root("run", region), polling=polling
        )

    def deploy_command(self, candidate: Candidate) -> list[str]:
        pairs = ",".join(f"{key}={value}" for key, value in sorted(candidate.labels.items()))
        labels = [f"--update-labels={pairs}"] if pairs else []
        return [
            "gcloud",
            "run",
            "deploy",
            self.service,
            *self._scope,
            f"--image={candidate.image}",
            f"--revision-suffix={candidate.revision_suffix}",
            f"--tag={candidate.tag}",
            "--no-traffic",
            f"--service-account={candidate.service_account}",
            *labels,
            *candidate.template.deploy_flags(),
        ]

    def manual_traffic_command(self, split: Split, remove_tags: Sequence[str] = ()) -> list[str]:
        """For an operator to run by hand: the rollout itself writes traffic with replaceService."""
        command = ["gcloud", "run", "services", "update-traffic", self.service, *self._scope[:2]]
        command.append(f"--to-revisions={split_flag(split)}")
        if remove_tags:
            command.append(f"--remove-tags={','.join(remove_tags)}")
        return command

    def issued_commands(self, candidate: Candidate) -> list[list[str]]:
        """The gcloud command the rollout can send to Cloud Run (for the deployer's custom role)."""
        return [self.deploy_command(candidate)]

    def issued_requests(self) -> list[tuple[str, str]]:
        """The Admin API calls the rollout can make, as method and URL (for the deployer's custom role)."""
        return [("GET", self.url), ("PUT", self.url)]

    def describe(self) -> Service:
        return self._read(self._polling.now() + self._polling.limit)

    def deploy(self, candidate: Candidate) -> None:
        """A new revision with no traffic and the candidate's tag; gcloud returns once it is ready, or fails."""
        try:
            self._run(self.deploy_command(candidate))
        except GcloudError as error:
            raise CloudRunError(str(error)) from error

    def write_traffic(self, read: Service, split: Split, tags: Tags) -> Written:
        """Replace traffic and tags on the object just read, only if nobody has written since, and wait until
        Cloud Run applies it.

        The PUT sends back read's resourceVersion, so Cloud Run refuses it with 409 if the service changed in the
        meantime ("May provide metadata.resourceVersion to enforce update from last read for optimistic concurrency
        control", replaceService): this write never replaces anyone else's. A 409 while the generation is still
        read's means only status or metadata moved, not spec, and the write is made again on the object as it is
        now. A write whose answer was an error or none is judged by the service as it is after it.
        """
        wanted = (dict(split), dict(tags))
        if (read.desired_split(), read.tags()) == wanted:
            return Written(read)  # nothing to change, and an unchanged spec would not raise the generation
        give_up, current, complaint = self._polling.now() + self._polling.limit, read, None
        while True:
            try:
                answer = self._call("PUT", give_up, current.with_traffic(split, tags))
                generation = Service(answer).generation
                break
            except ApiError as error:
                now = self._read(give_up)
                if now.generation == current.generation:
                    if error.code == 409 and now.resource_version != current.resource_version:
                        current = now
                        continue
                    raise CloudRunError(f"traffic write not applied: {error}") from None
                if now.generation != current.generation + 1 or (now.desired_split(), now.tags()) != wanted:
                    raise TrafficConflict(read, now, "around this rollout's write") from None
                generation, complaint = now.generation, str(error)
                break
        now = self._applied(read, generation, give_up)
        if (now.desired_split(), now.tags()) != wanted:
            raise TrafficConflict(read, now, "while this rollout wrote")
        not_ready = now.condition("Ready").get("status") == "False"
        return Written(now, complaint or (f"the service is not Ready: {now.ready_message()}" if not_ready else None))

    def _applied(self, read: Service, generation: int, give_up: datetime) -> Service:
        """Poll until status describes `generation` and its routes are ready (status.observedGeneration, as the
        reference says to poll); another generation meanwhile is someone else's write, right after this one.

        RoutesReady, not Ready, decides: Ready also needs the latest created revision to be ready, and after a
        failed deploy that one never is, while traffic to ready revisions is applied all the same."""
        while True:
            now = self._read(give_up)
            if now.generation != generation:
                raise TrafficConflict(read, now, "right after this rollout's write")
            routes = now.condition("RoutesReady") or now.condition("Ready")
            if now.observed_generation >= generation and routes.get("status") == "True":
                return now
            if now.observed_generation >= generation and routes.get("status") == "False":
                raise CloudRunError(f"traffic write cannot be applied: {routes.get('message') or 'RoutesReady False'}")
            self._polling.sleep_until(min(self._polling.now() + self._polling.interval, give_up))
            if self._polling.now() >= give_up:
                raise CloudRunError(
                    f"Cloud Run did not apply generation {generation} within {self._polling.limit}: "
                    f"{now.ready_message()}"
                )

    def _read(self, give_up: datetime) -> Service:
        try:
            return Service(self._call("GET", give_up))
        except ApiError as error:
            raise CloudRunError(f"cannot read the service: {error}") from None

    def _call(self, method: str, give_up: datetime, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        timeout = (give_up - self._polling.now()).total_seconds()
        if timeout <= 0:
            raise ApiError(None, f"{method} {self.url} not sent: its {self._polling.limit} are up")
        return self._api(method, self.url, body, timeout)
