"""The narrow part of Cloud Run the rollout needs, and its gcloud implementation.

Every call is scoped to one service, because the deployer holds roles/run.developer on that service
alone: nothing here lists revisions or services across the project.
"""

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from deploy.revision import RevisionTemplate

Split = Mapping[str, int]
"""Percent of traffic by revision name, revisions with none left out."""


class CloudRunError(Exception):
    """A Cloud Run call failed; the message is gcloud's."""


@dataclass(frozen=True)
class TrafficTarget:
    revision: str
    percent: int
    tag: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class ServiceState:
    traffic: tuple[TrafficTarget, ...]

    def split(self) -> dict[str, int]:
        shares: dict[str, int] = {}
        for target in self.traffic:
            if target.percent:
                shares[target.revision] = shares.get(target.revision, 0) + target.percent
        return shares

    def tag_url(self, tag: str) -> str | None:
        return next((target.url for target in self.traffic if target.tag == tag), None)


@dataclass(frozen=True)
class Candidate:
    revision_suffix: str
    image: str
    tag: str
    service_account: str
    template: RevisionTemplate


class CloudRun(Protocol):
    def describe(self) -> ServiceState: ...

    def deploy_without_traffic(self, candidate: Candidate) -> None:
        """Create the revision with no traffic and the candidate's tag; return once it is ready."""

    def set_traffic(self, split: Split) -> None: ...

    def retag(self, add: Mapping[str, str], remove: Sequence[str]) -> None:
        """Point each tag in add at its revision and drop the tags in remove, without moving traffic."""


def parse_service(document: Mapping[str, Any]) -> ServiceState:
    """`gcloud run services describe --format=json`: a Knative Service; status.traffic is what serves."""
    status = document.get("status", {})
    return ServiceState(
        traffic=tuple(
            TrafficTarget(
                revision=entry["revisionName"],
                percent=int(entry.get("percent", 0)),
                tag=entry.get("tag"),
                url=entry.get("url"),
            )
            for entry in status.get("traffic", [])
        )
    )


def split_flag(split: Split) -> str:
    return ",".join(f"{revision}={percent}" for revision, percent in sorted(split.items()))


Runner = Callable[[list[str]], str]


def run_gcloud(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CloudRunError(f"{' '.join(command[:4])} failed: {result.stderr.strip()}")
    return result.stdout


class GcloudCloudRun:
    def __init__(self, project: str, region: str, service: str, runner: Runner = run_gcloud) -> None:
        self.service = service
        self._scope = [f"--project={project}", f"--region={region}", "--quiet"]
        self._run = runner

    def describe_command(self) -> list[str]:
        return ["gcloud", "run", "services", "describe", self.service, *self._scope, "--format=json"]

    def deploy_command(self, candidate: Candidate) -> list[str]:
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
            *candidate.template.deploy_flags(),
        ]

    def traffic_command(self, split: Split) -> list[str]:
        return [
            "gcloud",
            "run",
            "services",
            "update-traffic",
            self.service,
            *self._scope,
            f"--to-revisions={split_flag(split)}",
        ]

    def retag_command(self, add: Mapping[str, str], remove: Sequence[str]) -> list[str]:
        command = ["gcloud", "run", "services", "update-traffic", self.service, *self._scope]
        if add:
            command.append("--update-tags=" + ",".join(f"{tag}={revision}" for tag, revision in sorted(add.items())))
        if remove:
            command.append("--remove-tags=" + ",".join(sorted(remove)))
        return command

    def describe(self) -> ServiceState:
        return parse_service(json.loads(self._run(self.describe_command())))

    def deploy_without_traffic(self, candidate: Candidate) -> None:
        self._run(self.deploy_command(candidate))

    def set_traffic(self, split: Split) -> None:
        self._run(self.traffic_command(split))

    def retag(self, add: Mapping[str, str], remove: Sequence[str]) -> None:
        if add or remove:
            self._run(self.retag_command(add, remove))
