"""One scenario on the shared stand-in cloud: its own project (Cloud Run namespace, Firestore data, lock bucket),
its releases, the client load, the rollouts it runs through the pipeline's own step, and what they did.
"""

import json
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rehearsal import seed
from rehearsal.api import Json
from rehearsal.cloud import Cloud
from rehearsal.cloud_build import rfc3339
from rehearsal.faults import GOOD, Behaviour
from rehearsal.pipeline import (
    REPOSITORY,
    RolloutStep,
    Running,
    compressed,
    resolve,
    start,
    tool_time_defaults,
    workspace,
)
from rehearsal.served import Served
from rehearsal.uv_run import EXTRA_OPTIONS

Outcome = Literal["promoted", "rolled_back", "refused", "stopped", "never_served"]
OPERATOR_CHANGED_TRAFFIC = 3
"""`python -m deploy`'s documented exit status when an operator changed traffic during the rollout."""
LOAD_STARTED_AFTER = 10
"""Client responses recorded before the load counts as running."""
ROLLOUT_LIMIT_SECONDS = 240
"""Longest one compressed rollout may take before the rehearsal kills it and fails."""


@dataclass
class Rehearsal:
    """What every scenario shares."""

    cloud: Cloud
    step: RolloutStep
    directory: Path
    compression: float
    load_rate: float = 30

    def __post_init__(self) -> None:
        self.time = compressed(self.step, self.compression, tool_time_defaults())


@dataclass
class Rollout:
    """One run of the pipeline's rollout step, and what it did."""

    commit: str
    build_id: str
    image: str
    started: float
    ended: float = 0.0
    exit_code: int | None = None
    """None when the rehearsal killed it."""
    killed_by: str | None = None
    output: str = ""
    candidate: str | None = None
    outcome: Outcome | None = None
    traffic_before: dict[str, int] = field(default_factory=dict)
    traffic_after: dict[str, int] = field(default_factory=dict)

    def summary(self) -> Json:
        return {
            "build": self.build_id,
            "commit": self.commit[:7],
            "exit_code": self.exit_code,
            "killed_by": self.killed_by,
            "candidate": self.candidate,
            "outcome": self.outcome,
            "traffic_before": self.traffic_before,
            "traffic_after": self.traffic_after,
            "duration_s": round(self.ended - self.started, 1),
        }


def commits(count: int) -> list[str]:
    """The newest `count` commits of this repository, newest first: real ones, so ancestry can be checked."""
    listed = subprocess.run(
        ["git", "rev-list", f"--max-count={count}", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True, check=True
    )
    found = listed.stdout.split()
    if len(found) < count:
        raise RuntimeError(f"the rehearsal needs {count} commits of history, the clone has {len(found)}")
    return found


def percentile(latencies: list[float], quantile: float) -> float | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


class Stage:
    def __init__(self, rehearsal: Rehearsal, name: str) -> None:
        self.rehearsal = rehearsal
        self.cloud = rehearsal.cloud
        self.name = name
        self.project = seed.Project(f"rh-{name[:12].strip('-')}-{secrets.token_hex(3)}")
        self.directory = rehearsal.directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        self.rollouts: list[Rollout] = []
        self._load: subprocess.Popen[bytes] | None = None
        self._load_file = self.directory / "client-load.jsonl"
        self._source_builds: dict[str, str] = {}
        self._repository = f"{self.cloud.settings.region}-docker.pkg.dev/{self.project.id}/birthday-api/birthday-api"

    # -- what Terraform and earlier pipeline runs left

    def terraform(self) -> None:
        """The bucket and the service with its placeholder revision, serving."""
        self.cloud.create_bucket(self.project.lock_bucket)
        self.cloud.create_service(self.project.id, seed.bootstrap_body(self.project))
        self.wait_until_ready()

    def release(self, name: str, behaviour: Behaviour = GOOD) -> str:
        """An image a build pushed, by digest; Cloud Build keeps that build's record, created now."""
        image = self.cloud.registry.push(self._repository, f"{self.project.id}/{name}", behaviour)
        self._source_builds[image] = source_build = str(uuid.uuid4())
        name_only, digest = image.split("@")
        self.cloud.call(
            lambda: self.cloud.builds.add(
                self.project.id,
                source_build,
                createTime=rfc3339(datetime.now(UTC)),
                results={"images": [{"name": f"{name_only}:{source_build}", "digest": digest}]},
            )
        )
        return image

    def serving_already(self, image: str, commit: str) -> str:
        """A release an earlier rollout shipped: a revision named as the rollout names them, with all traffic."""
        revision = f"{self.project.service}-{commit[:7]}-{secrets.token_hex(3)}"
        body = seed.service_body(self.project, revision, image)
        self.cloud.call(lambda: self.cloud.cloud_run.replace_service(self.project.id, self.project.service, body))
        self.wait_until_ready()
        return revision

    def wait_until_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            body = self.cloud.cloud_run.services[(self.project.id, self.project.service)].body
            status = body.get("status", {})
            conditions = {entry["type"]: entry["status"] for entry in status.get("conditions", [])}
            return (
                status.get("observedGeneration") == body["metadata"]["generation"] and conditions.get("Ready") == "True"
            )

        self.cloud.wait_until(ready, timeout=timeout, what=f"{self.project.service} in {self.project.id} being Ready")

    # -- the client load

    def start_load(self, rate: float | None = None) -> None:
        url = self.service()["status"]["url"]
        rate_option = f"--rate={rate or self.rehearsal.load_rate}"
        with (self.directory / "client-load.log").open("ab") as log:
            self._load = subprocess.Popen(
                [sys.executable, "-m", "rehearsal.load", url, str(self._load_file), rate_option],
                cwd=REPOSITORY,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        # A loaded machine may take seconds to start a Python process: the load is on once it has answers.
        deadline = time.monotonic() + 60
        while len(self.client_records()) < LOAD_STARTED_AFTER and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop_load(self) -> None:
        if self._load is not None and self._load.poll() is None:
            self._load.send_signal(signal.SIGTERM)
            try:
                self._load.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._load.kill()
                self._load.wait()

    def client_records(self) -> list[Json]:
        if not self._load_file.exists():
            return []
        return [json.loads(line) for line in self._load_file.read_text().splitlines() if line.strip()]

    # -- rollouts

    def start_rollout(self, image: str, commit: str, **values: str) -> tuple[Rollout, Running]:
        """The rollout step of a build of `commit` deploying `image`, with its own record in Cloud Build."""
        build_id = str(uuid.uuid4())
        step = self.rehearsal.step
        self.cloud.call(
            lambda: self.cloud.builds.add(
                self.project.id,
                build_id,
                status="WORKING",
                createTime=rfc3339(datetime.now(UTC)),
                startTime=rfc3339(datetime.now(UTC)),
                timeout=str(step.document.get("timeout", "600s")),
                substitutions={"COMMIT_SHA": commit},
            )
        )
        given = {
            **self.rehearsal.time.substitutions,
            **self.project.trigger_substitutions(),
            "BUILD_ID": build_id,
            "COMMIT_SHA": commit,
            "SHORT_SHA": commit[:7],
            "LOCATION": self.cloud.settings.region,
            "_REGION": self.cloud.settings.region,
            "_SOURCE_BUILD": self._source_builds[image],
            **values,
        }
        number = len(self.rollouts) + 1
        directory = workspace(self.directory / f"workspace-{number}", {"image-digest": image + "\n"})
        rollout = Rollout(commit, build_id, image, time.time(), traffic_before=self.traffic())
        environment = {**self.cloud.gcloud_environment(), EXTRA_OPTIONS: " ".join(self.rehearsal.time.extra_options)}
        running = start(
            step, resolve(step.defaults, given), directory, environment, self.directory / f"rollout-{number}.log"
        )
        self.rollouts.append(rollout)
        return rollout, running

    def finish(self, rollout: Rollout, running: Running, *, killed_by: str | None = None) -> Rollout:
        code = running.wait(ROLLOUT_LIMIT_SECONDS)
        rollout.ended = time.time()
        status = "CANCELLED" if killed_by == "SIGTERM" else "SUCCESS" if code == 0 else "FAILURE"
        self.cloud.call(lambda: self.cloud.builds.end(self.project.id, rollout.build_id, status))
        rollout.exit_code = None if killed_by else code
        rollout.killed_by = killed_by
        rollout.output = running.output()
        rollout.traffic_after = self.traffic()
        rollout.candidate = self._candidate(rollout)
        rollout.outcome = self._outcome(rollout)
        return rollout

    def rollout(self, image: str, commit: str, **values: str) -> Rollout:
        return self.finish(*self.start_rollout(image, commit, **values))

    def rollout_until(
        self,
        image: str,
        commit: str,
        condition: Callable[[], bool],
        action: Callable[[Running], str | None],
        **values: str,
    ) -> Rollout:
        """Start a rollout, and once `condition` holds, act on it (the action may say it killed the build)."""
        rollout, running = self.start_rollout(image, commit, **values)
        deadline = time.monotonic() + ROLLOUT_LIMIT_SECONDS
        while not condition():
            if running.process.poll() is not None or time.monotonic() > deadline:
                return self.finish(rollout, running)
            time.sleep(0.2)
        killed_by = action(running)
        return self.finish(rollout, running, killed_by=killed_by)

    def _candidate(self, rollout: Rollout) -> str | None:
        revisions = self.cloud.call(lambda: self.cloud.cloud_run.list_revisions(self.project.id))["items"]
        made = [
            one["metadata"]["name"]
            for one in revisions
            if one["spec"]["containers"][0]["image"] == rollout.image and self._created(one) >= rollout.started - 1
        ]
        return made[-1] if made else None

    @staticmethod
    def _created(revision: Json) -> float:
        return datetime.fromisoformat(revision["metadata"]["creationTimestamp"].replace("Z", "+00:00")).timestamp()

    def _outcome(self, rollout: Rollout) -> Outcome:
        """What the rollout did, from what it left: judged on the service and the router, not on its log."""
        after = rollout.traffic_after
        candidate = rollout.candidate
        if rollout.exit_code == OPERATOR_CHANGED_TRAFFIC:
            return "stopped"
        if candidate is not None and after == {candidate: 100}:
            return "promoted"
        if candidate is None:
            return "refused"
        if not any(one.revision == candidate for one in self.served()):
            return "never_served"
        if after == rollout.traffic_before:
            return "rolled_back"
        return "stopped"

    # -- what there is to see

    @property
    def load_started(self) -> bool:
        return self._load is not None

    @property
    def lock_object(self) -> str:
        """Where the runbook (docs/operations.md) says the rollout lock is."""
        return f"locks/{self.project.service}.json"

    @property
    def freeze_object(self) -> str:
        """Where the runbook says an operator puts a freeze."""
        return f"freeze/{self.project.service}"

    def set_freeze(self, reason: str) -> subprocess.CompletedProcess[str]:
        """As the runbook says: `gcloud storage cp - gs://$BUCKET/freeze/$SERVICE`."""
        return self.gcloud("storage", "cp", "-", f"gs://{self.project.lock_bucket}/{self.freeze_object}", stdin=reason)

    @staticmethod
    def pause(seconds: float) -> None:
        time.sleep(seconds)

    def revisions(self) -> list[str]:
        return self.cloud.call(
            lambda: sorted(name for (space, name) in self.cloud.cloud_run.revisions if space == self.project.id)
        )

    def image_of(self, revision: str) -> str | None:
        found = self.cloud.call(lambda: self.cloud.cloud_run.revisions.get((self.project.id, revision)))
        return None if found is None else str(found.container["image"])

    def service(self) -> Json:
        return self.cloud.service(self.project.id, self.project.service)

    def traffic(self) -> dict[str, int]:
        """status.traffic: percent by revision, revisions without traffic left out."""
        split: dict[str, int] = {}
        for entry in self.service().get("status", {}).get("traffic", []):
            if entry.get("percent"):
                split[entry["revisionName"]] = split.get(entry["revisionName"], 0) + entry["percent"]
        return split

    def traffic_history(self) -> list[dict[str, int]]:
        """Every split the service URL served, in order."""
        key = (self.project.id, self.project.service)
        return self.cloud.call(lambda: [split for _, where, split in self.cloud.traffic_history if where == key])

    def served(self) -> list[Served]:
        return self.cloud.served(self.project.id)

    def write_after_next_read(self, traffic: dict[str, int]) -> None:
        """An operator's traffic change that lands right after whoever reads the service next has been answered."""

        def write() -> None:
            body = self.cloud.cloud_run.get_service(self.project.id, self.project.service)
            tags = [
                {"revisionName": one["revisionName"], "tag": one["tag"]}
                for one in body["spec"]["traffic"]
                if one.get("tag")
            ]
            body["spec"]["traffic"] = [
                {"revisionName": name, "percent": share} for name, share in traffic.items()
            ] + tags
            self.cloud.cloud_run.replace_service(self.project.id, self.project.service, body)

        self.cloud.call(lambda: self.cloud.front.after_read.__setitem__(self.project.id, write))

    def gcloud(self, *arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """An operator at a terminal: the real gcloud against the stand-ins."""
        scope = [f"--project={self.project.id}"]
        if arguments[0] == "run":
            scope.append(f"--region={self.cloud.settings.region}")
        return subprocess.run(
            ["gcloud", *arguments, *scope],
            env=self.cloud.gcloud_environment(),
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
            check=False,
        )

    def object_exists(self, name: str) -> bool:
        found = self.gcloud("storage", "objects", "describe", f"gs://{self.project.lock_bucket}/{name}")
        return found.returncode == 0

    # -- the report

    def report(self, subject: Rollout, extra: Mapping[str, Any] | None = None) -> Json:
        records = [one for one in self.client_records() if one.get("method")]
        return {
            "scenario": self.name,
            "outcome": subject.outcome,
            "final_traffic": self.traffic(),
            "client_requests": len(records),
            "client_5xx": sum(1 for one in records if (one.get("status") or 0) >= 500),
            "client_connection_errors": sum(1 for one in records if one.get("status") is None),
            "stale_reads": sum(1 for one in records if one.get("stale")),
            "duration_s": round(time.time() - self.started, 1),
            "rollouts": [one.summary() for one in self.rollouts],
            **(extra or {}),
        }

    def close(self) -> None:
        """Stop the client load; keep what the router served next to the other logs."""
        self.stop_load()
        with (self.directory / "served.jsonl").open("w") as out:
            for one in self.served():
                out.write(json.dumps(one.__dict__) + "\n")
