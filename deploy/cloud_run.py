"""The narrow part of Cloud Run the rollout needs, read and written through gcloud.

A service is read whole (`gcloud run services describe --format=json`, a Knative Service of the Admin API v1):
`spec.traffic` is what was asked for, `status.traffic` what Cloud Run serves. They differ while a change is
being applied, and for good when spec names a revision that never became ready. Traffic and tags are written
by `gcloud run services replace` with the object just read, traffic edited: see write_traffic for what that
guards and what it cannot. Every call is scoped to one service.
"""

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy.gcloud import GcloudError, Runner
from deploy.revision import RevisionTemplate

Split = Mapping[str, int]
"""Percent of traffic by revision name, revisions with none left out."""
Tags = Mapping[str, str]
"""Revision name by tag."""


class CloudRunError(Exception):
    """A Cloud Run call failed; the message is gcloud's."""


class TrafficConflict(CloudRunError):
    """Someone else wrote the service between this rollout's read and its write, or right after it."""

    def __init__(self, read: "Service", now: "Service", replaced_theirs: bool) -> None:
        whose = "this rollout's write replaced theirs" if replaced_theirs else "their change stands"
        super().__init__(
            f"the service went from generation {read.generation} to {now.generation} around this rollout's write: "
            f"someone else changed it ({whose}); it now asks for {describe_split(now.desired_split())}"
        )
        self.now = now
        self.replaced_theirs = replaced_theirs


@dataclass(frozen=True)
class Service:
    """One read of the service: the Knative Service document gcloud printed."""

    document: Mapping[str, Any]

    @property
    def generation(self) -> int:
        return int(self.document.get("metadata", {}).get("generation", 0))

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

    def ready_message(self) -> str:
        ready: Mapping[str, Any] = next((c for c in self._status.get("conditions", []) if c.get("type") == "Ready"), {})
        return str(ready.get("message") or ready.get("status") or "no Ready condition")

    def with_traffic(self, split: Split, tags: Tags) -> dict[str, Any]:
        """This object as `services replace` takes it: traffic and tags replaced, nothing else changed.

        status is dropped (gcloud drops it too); metadata.namespace is dropped because for a namespace that is the
        project number gcloud would first look the number up in Resource Manager, and --project says the same.
        """
        document = copy.deepcopy(dict(self.document))
        document.pop("status", None)
        document.get("metadata", {}).pop("namespace", None)
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
    """The service after a traffic write, and gcloud's complaint if it reported a failure the write survived."""

    service: Service
    complaint: str | None = None


def split_flag(split: Split) -> str:
    return ",".join(f"{revision}={percent}" for revision, percent in sorted(split.items()))


def describe_split(split: Split) -> str:
    return split_flag(split).replace(",", ", ") or "no traffic"


class GcloudCloudRun:
    """Every gcloud command the rollout sends to Cloud Run is built here."""

    def __init__(self, project: str, region: str, service: str, runner: Runner) -> None:
        self.service = service
        self._scope = [f"--project={project}", f"--region={region}", "--quiet"]
        self._run = runner

    def describe_command(self) -> list[str]:
        return ["gcloud", "run", "services", "describe", self.service, *self._scope, "--format=json"]

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
        """For an operator to run by hand: the rollout itself writes traffic with replace_command."""
        command = ["gcloud", "run", "services", "update-traffic", self.service, *self._scope[:2]]
        command.append(f"--to-revisions={split_flag(split)}")
        if remove_tags:
            command.append(f"--remove-tags={','.join(remove_tags)}")
        return command

    def replace_command(self) -> list[str]:
        """The service document comes on stdin ("-")."""
        return ["gcloud", "run", "services", "replace", "-", *self._scope, "--format=json"]

    def issued_commands(self, candidate: Candidate) -> list[list[str]]:
        """One of each command the rollout can send to Cloud Run (for the deployer's custom role)."""
        return [self.describe_command(), self.deploy_command(candidate), self.replace_command()]

    def describe(self) -> Service:
        return Service(json.loads(self._call(self.describe_command())))

    def deploy(self, candidate: Candidate) -> None:
        """A new revision with no traffic and the candidate's tag; gcloud returns once it is ready, or fails."""
        self._call(self.deploy_command(candidate))

    def write_traffic(self, read: Service, split: Split, tags: Tags) -> Written:
        """Replace traffic and tags on the object just read, and prove nobody else wrote in between.

        gcloud 528's `services replace` does not send the resourceVersion of the file: ReplaceServiceChange copies
        in the one from gcloud's own GET, made just before its PUT. So the server's 409 guards only that short
        window; the window from `read` to gcloud's GET is guarded here, by the generation, which every change to
        spec raises by one: a result that is not read's generation + 1 means another writer came in between (or
        right after), and the write is reported as a conflict rather than as this rollout's traffic.
        """
        wanted = (dict(split), dict(tags))
        if (read.desired_split(), read.tags()) == wanted:
            return Written(read)  # nothing to change, and an unchanged spec would not raise the generation
        try:
            output = self._run(self.replace_command(), json.dumps(read.with_traffic(split, tags)))
        except GcloudError as error:
            # gcloud fails a write whose result is not Ready, even when the write itself applied (for example while
            # the latest created revision is a failed one). What counts is the state the service is in now.
            now = self.describe()
            if now.generation == read.generation:
                raise CloudRunError(f"traffic write not applied: {error}") from error
            return self._verify(read, now, wanted, str(error))
        return self._verify(read, Service(json.loads(output)), wanted, None)

    @staticmethod
    def _verify(read: Service, now: Service, wanted: tuple[Split, Tags], complaint: str | None) -> Written:
        ours = (now.desired_split(), now.tags()) == wanted
        if now.generation == read.generation + 1 and ours:
            return Written(now, complaint)
        # Ours and yet more than one change: another write came first and ours replaced it.
        raise TrafficConflict(read, now, replaced_theirs=ours)

    def _call(self, command: Sequence[str]) -> str:
        try:
            return self._run(command)
        except GcloudError as error:
            raise CloudRunError(str(error)) from error
