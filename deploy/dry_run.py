"""`python -m deploy --dry-run`: the real Rollout against canned answers, printing every call it makes.

Nothing here retells the rollout: the gcloud commands and Admin API calls printed are the ones deploy/rollout.py
makes through the real adapters, the API calls at Cloud Run's default regional endpoint. The canned answers are
those of a healthy service and an empty bucket (one revision, STABLE, serves everything), Monitoring answers with
healthy figures, and waits are printed instead of slept.
"""

import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from deploy.cloud_run import CloudRunAdmin, Polling, Service, describe_split
from deploy.gcloud import GcloudError
from deploy.google_api import GcloudConnection
from deploy.lock import GcsObjectStore, release_name
from deploy.metrics import REQUEST_COUNT, REQUEST_LATENCIES, Percentile, RequestStats, Window
from deploy.rollout import BUILD_TIME_LABEL, COMMIT_LABEL, Rollout, RolloutPlan
from deploy.smoke import SmokeReport

STABLE = "STABLE"
"""The revision the canned service serves when the dry run starts: whichever serves 100 % in reality."""

Out = Callable[[str], None]


def _option(command: Sequence[str], name: str) -> str:
    return next(word.split("=", 1)[1] for word in command if word.startswith(f"--{name}="))


class CannedCloud:
    """Answers each gcloud command and Admin API call the rollout makes, as a service and bucket that do what they
    are told, and applies every change at once."""

    def __init__(self, service: str, bucket: str, out: Out) -> None:
        self._out = out
        last = {"revision": STABLE, COMMIT_LABEL: "0" * 40, BUILD_TIME_LABEL: "0" * 20}
        self._objects: dict[str, tuple[str, int]] = {f"gs://{bucket}/{release_name(service)}": (json.dumps(last), 1)}
        self._generations = 1
        traffic = [{"revisionName": STABLE, "percent": 100}]
        self._service: dict[str, Any] = {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": service, "generation": 1, "resourceVersion": "v1"},
            "spec": {"template": {"metadata": {"name": STABLE}}, "traffic": traffic},
            "status": {"latestReadyRevisionName": STABLE, "latestCreatedRevisionName": STABLE, "traffic": traffic},
        }
        self._apply(traffic)

    def __call__(self, command: Sequence[str], stdin: str | None = None) -> str:
        self._out(shlex.join(command))
        words = " ".join(command[1:4])
        if words.startswith("run deploy"):
            revision = f"{command[3]}-{_option(command, 'revision-suffix')}"
            spec = self._service["spec"]
            spec["template"]["metadata"]["name"] = revision
            self._apply([*spec["traffic"], {"revisionName": revision, "tag": _option(command, "tag")}])
            return ""
        return self._storage(command, words, stdin)

    def api(self, method: str, url: str, body: Mapping[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        self._out(f"{method} {url}")
        if method == "PUT" and body is not None:
            version = body["metadata"]["resourceVersion"]
            self._out(f"#   the service as just read, resourceVersion {version}: {traffic_summary(Service(body))}")
            self._apply(body["spec"]["traffic"])
        answer: dict[str, Any] = json.loads(json.dumps(self._service))
        return answer

    def _apply(self, traffic: list[dict[str, Any]]) -> None:
        metadata = self._service["metadata"]
        metadata["generation"] += 1
        metadata["resourceVersion"] = f"v{metadata['generation']}"
        self._service["spec"]["traffic"] = traffic
        host = f"{metadata['name']}-abc123-ew.a.run.app"
        self._service["status"] |= {
            "observedGeneration": metadata["generation"],
            "conditions": [
                {"type": kind, "status": "True"} for kind in ("Ready", "ConfigurationsReady", "RoutesReady")
            ],
            "traffic": [
                {**entry, **({"url": f"https://{entry['tag']}---{host}"} if "tag" in entry else {})}
                for entry in traffic
            ],
        }

    def _storage(self, command: Sequence[str], words: str, stdin: str | None) -> str:
        url = next(word for word in command if word.startswith("gs://")).split("#")[0]
        if words.startswith("storage cp"):
            self._generations += 1
            self._objects[url] = (stdin or "", self._generations)
            self._out(f"#   on stdin: {stdin}")
            return ""
        if url not in self._objects:
            raise GcloudError(command, f"ERROR: (gcloud.{words.replace(' ', '.')}) {url} not found: 404.")
        if words == "storage objects describe":
            return f"{self._objects[url][1]}\n"
        if words.startswith("storage cat"):
            return self._objects[url][0]
        del self._objects[url]
        return ""


def traffic_summary(service: Service) -> str:
    tags = ", ".join(f"{tag}={revision}" for tag, revision in sorted(service.tags().items()))
    return f"traffic {describe_split(service.desired_split())}; tags {tags or 'none'}"


class CannedMetrics:
    def __init__(self, out: Out) -> None:
        self._out = out

    def request_stats(self, revision: str, window: Window) -> RequestStats:
        self._out(f"# Monitoring timeSeries.list: {REQUEST_COUNT} and {REQUEST_LATENCIES} of {revision}, {window}")
        periods = window.seconds // 60
        return RequestStats(
            total=120 * periods, server_errors=0, p99=Percentile(100, 64, 128), periods_with_data=periods
        )


class CannedLoad:
    def __init__(self, rate: float, out: Out) -> None:
        self._rate = rate
        self._out = out

    def start(self, targets: Mapping[str, str]) -> None:
        for revision, url in targets.items():
            self._out(
                f"# synthetic load: {self._rate:g} requests/s of PUT and GET on fresh users at {url} ({revision})"
            )

    def stop(self) -> None:
        self._out("# synthetic load stops")

    def sent(self, revision: str, start: datetime, end: datetime) -> int:
        return 0


class PrintingClock:
    def __init__(self, out: Out) -> None:
        self._out = out
        self.start = self.current = datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.current

    def sleep_until(self, moment: datetime) -> None:
        if moment > self.current:
            self._out(f"# wait until {moment:%H:%M:%S}Z, {moment - self.start} after the start")
            self.current = moment


def dry_run(plan: RolloutPlan, project: str, region: str, bucket: str) -> list[str]:
    """The rollout as the commands and API calls it makes, each followed by what it sends, its log as comments."""
    lines: list[str] = []
    cloud = CannedCloud(plan.service, bucket, lines.append)
    clock = PrintingClock(lines.append)

    def smoke(url: str) -> SmokeReport:
        lines.append(f"python -m deploy.smoke {url}")
        return SmokeReport(url, passed=["(dry run: not sent)"])

    Rollout(
        plan,
        CloudRunAdmin(
            project,
            region,
            plan.service,
            cloud,
            api=cloud.api,
            root=GcloudConnection.from_config({}).regional_root("run", region),
            polling=Polling(clock.now, clock.sleep_until, plan.call_limit),
        ),
        CannedMetrics(lines.append),
        GcsObjectStore(bucket, cloud),
        smoke,
        CannedLoad(plan.synthetic_rps, lines.append),
        clock,
        log=lambda line: lines.extend(f"# {part}" for part in line.splitlines()),
    ).run()
    return lines
