"""The Cloud Run stand-in against the Admin API v1 reference, through the real gcloud where gcloud can say it:
status codes, field names, generations, spec.traffic apart from status.traffic, readiness, and a 409 on a stale
resourceVersion. Every behaviour a rehearsal scenario relies on is here."""

import json
import subprocess
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from deploy.cloud_run import CloudRunAdmin, Polling, TrafficConflict
from deploy.google_api import gcloud_config
from deploy.rollout import SystemClock
from rehearsal.api import Json
from rehearsal.cloud import Cloud
from rehearsal.faults import Behaviour
from rehearsal.router import REVISION_HEADER
from rehearsal.seed import Project, bootstrap_body

REGION = "europe-west1"
FAST = Behaviour(program="hello")
"""Revisions of these tests run the placeholder program: it starts in a fraction of a second."""
QUICK_FAILURE = "--startup-probe=httpGet.path=/,periodSeconds=1,timeoutSeconds=1,failureThreshold=2"

pytestmark = pytest.mark.slow


def gcloud(cloud: Cloud, project: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["gcloud", *arguments, f"--project={project}", f"--region={REGION}", "--quiet"],
        env=cloud.gcloud_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def describe(cloud: Cloud, project: str) -> Json:
    described = gcloud(cloud, project, "run", "services", "describe", "birthday-api", "--format=json")
    assert described.returncode == 0, described.stderr
    body: Json = json.loads(described.stdout)
    return body


def api(cloud: Cloud, method: str, path: str, body: object = None) -> tuple[int, Json]:
    """A call to the Admin API as gcloud makes it: through the front end, as a proxy, for the region's host."""
    proxy = urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{cloud.front_port}"})
    request = urllib.request.Request(
        f"http://{REGION}-run.local{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.build_opener(proxy).open(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback URLs of the router)
        return response.status, response.headers[REVISION_HEADER]


@pytest.fixture
def project(stand_ins: Cloud) -> Project:
    """A project whose service runs Terraform's placeholder revision, Ready and serving."""
    made = Project(f"test-{uuid.uuid4().hex[:10]}")
    stand_ins.create_service(made.id, bootstrap_body(made))
    stand_ins.wait_until(
        lambda: ready(stand_ins.cloud_run.services[(made.id, made.service)].body), timeout=30, what="the service Ready"
    )
    return made


def ready(body: Json) -> bool:
    status = body.get("status", {})
    conditions = {entry["type"]: entry["status"] for entry in status.get("conditions", [])}
    return bool(
        status.get("observedGeneration") == body["metadata"]["generation"] and conditions.get("Ready") == "True"
    )


def deploy(cloud: Cloud, project: Project, suffix: str, behaviour: Behaviour = FAST, *flags: str) -> Any:
    image = cloud.registry.push(f"{REGION}-docker.pkg.dev/{project.id}/repo/app", f"{project.id}/{suffix}", behaviour)
    return gcloud(
        cloud,
        project.id,
        "run",
        "deploy",
        project.service,
        f"--image={image}",
        f"--revision-suffix={suffix}",
        f"--tag=c-{suffix}",
        "--no-traffic",
        *flags,
    )


def test_a_missing_service_is_404_not_found_and_gcloud_says_so(stand_ins: Cloud) -> None:
    status, body = api(stand_ins, "GET", "/apis/serving.knative.dev/v1/namespaces/nowhere/services/birthday-api")
    assert status == 404
    assert body["error"]["status"] == "NOT_FOUND"
    described = gcloud(stand_ins, "nowhere", "run", "services", "describe", "birthday-api")
    assert described.returncode == 1
    assert "Cannot find service [birthday-api]" in described.stderr


def test_a_service_carries_generation_observed_generation_conditions_and_revision_names(
    stand_ins: Cloud, project: Project
) -> None:
    body = describe(stand_ins, project.id)
    assert body["apiVersion"] == "serving.knative.dev/v1"
    assert body["kind"] == "Service"
    assert body["metadata"]["generation"] == body["status"]["observedGeneration"] == 1
    assert body["metadata"]["resourceVersion"]
    assert {entry["type"]: entry["status"] for entry in body["status"]["conditions"]} == {
        "Ready": "True",
        "ConfigurationsReady": "True",
        "RoutesReady": "True",
    }
    assert body["status"]["latestCreatedRevisionName"] == body["status"]["latestReadyRevisionName"]
    assert body["status"]["traffic"] == [
        {"revisionName": project.bootstrap_revision, "percent": 100, "latestRevision": True}
    ]
    # gcloud polls the service itself: the reference lists no operation-id annotation among a Service's.
    assert "run.googleapis.com/operation-id" not in body["metadata"]["annotations"]


def test_a_tagged_no_traffic_deploy_gets_its_own_url_and_no_share(stand_ins: Cloud, project: Project) -> None:
    deployed = deploy(stand_ins, project, "two")
    assert deployed.returncode == 0, deployed.stderr
    body = describe(stand_ins, project.id)
    assert body["metadata"]["generation"] == body["status"]["observedGeneration"] == 2
    assert body["spec"]["template"]["metadata"]["name"] == f"{project.service}-two"
    assert (
        body["status"]["latestCreatedRevisionName"] == body["status"]["latestReadyRevisionName"] == "birthday-api-two"
    )
    # gcloud's --no-traffic pins the latest-revision target to the revision serving now.
    assert body["spec"]["traffic"] == [
        {"revisionName": project.bootstrap_revision, "percent": 100},
        {"revisionName": "birthday-api-two", "tag": "c-two"},
    ]
    tagged = next(entry for entry in body["status"]["traffic"] if entry.get("tag") == "c-two")
    assert "percent" not in tagged
    assert fetch(tagged["url"]) == (200, "birthday-api-two")
    assert fetch(body["status"]["url"]) == (200, project.bootstrap_revision)


def test_a_revision_has_its_template_labels_and_status_and_is_listed_by_label(
    stand_ins: Cloud, project: Project
) -> None:
    assert deploy(stand_ins, project, "three").returncode == 0
    shown = gcloud(stand_ins, project.id, "run", "revisions", "describe", "birthday-api-three", "--format=json")
    revision = json.loads(shown.stdout)
    assert revision["kind"] == "Revision"
    assert revision["metadata"]["labels"]["serving.knative.dev/service"] == project.service
    assert revision["metadata"]["labels"]["serving.knative.dev/configurationGeneration"] == "2"
    assert {entry["type"]: entry["status"] for entry in revision["status"]["conditions"]}["Ready"] == "True"
    listed = gcloud(stand_ins, project.id, "run", "revisions", "list", f"--service={project.service}", "--format=json")
    assert {one["metadata"]["name"] for one in json.loads(listed.stdout)} == {
        project.bootstrap_revision,
        "birthday-api-three",
    }


def test_update_traffic_splits_the_service_url_exactly(stand_ins: Cloud, project: Project) -> None:
    assert deploy(stand_ins, project, "four").returncode == 0
    moved = gcloud(
        stand_ins,
        project.id,
        "run",
        "services",
        "update-traffic",
        project.service,
        f"--to-revisions=birthday-api-four=10,{project.bootstrap_revision}=90",
    )
    assert moved.returncode == 0, moved.stderr
    body = describe(stand_ins, project.id)
    shares = Counter(
        {entry["revisionName"]: entry.get("percent", 0) for entry in body["status"]["traffic"] if "percent" in entry}
    )
    assert shares == {"birthday-api-four": 10, project.bootstrap_revision: 90}
    served = Counter(fetch(body["status"]["url"])[1] for _ in range(100))
    assert served == {"birthday-api-four": 10, project.bootstrap_revision: 90}


def test_a_write_with_a_stale_resource_version_is_409_and_changes_nothing(stand_ins: Cloud, project: Project) -> None:
    path = f"/apis/serving.knative.dev/v1/namespaces/{project.id}/services/{project.service}"
    _, read = api(stand_ins, "GET", path)
    assert deploy(stand_ins, project, "five").returncode == 0
    read["spec"]["traffic"] = [{"revisionName": "birthday-api-five", "percent": 100}]
    status, body = api(stand_ins, "PUT", path, read)
    assert status == 409
    assert body["error"]["status"] == "ABORTED"
    assert read["metadata"]["resourceVersion"] in body["error"]["message"]
    _, now = api(stand_ins, "GET", path)
    assert now["metadata"]["generation"] == 2
    assert {entry["revisionName"] for entry in now["spec"]["traffic"] if entry.get("percent")} == {
        project.bootstrap_revision
    }
    # Sent back current, or left out (which the reference says disables the check), the same write succeeds.
    read["metadata"]["resourceVersion"] = now["metadata"]["resourceVersion"]
    assert api(stand_ins, "PUT", path, read)[0] == 200
    del read["metadata"]["resourceVersion"]
    assert api(stand_ins, "PUT", path, read)[0] == 200


def test_gcloud_services_replace_sends_the_version_it_reads_itself_not_the_files(
    stand_ins: Cloud, project: Project, tmp_path: Any
) -> None:
    """So a rollout cannot get compare-and-swap from `gcloud run services replace` with an object it read before."""
    stale = describe(stand_ins, project.id)
    assert deploy(stand_ins, project, "six").returncode == 0
    stale["spec"]["traffic"] = [{"revisionName": "birthday-api-six", "percent": 100}]
    (tmp_path / "service.json").write_text(json.dumps(stale))
    replaced = gcloud(stand_ins, project.id, "run", "services", "replace", str(tmp_path / "service.json"))
    assert replaced.returncode == 0, replaced.stderr
    assert describe(stand_ins, project.id)["status"]["traffic"][0]["revisionName"] == "birthday-api-six"


def test_the_rollouts_own_calls_go_where_gcloud_goes_and_a_write_on_a_stale_read_is_refused(
    stand_ins: Cloud, project: Project
) -> None:
    """The rollout's Cloud Run adapter as `python -m deploy` builds it, from gcloud's configuration alone."""

    def runner(command: Sequence[str], stdin: str | None = None) -> str:
        ran = subprocess.run(
            list(command), env=stand_ins.gcloud_environment(), capture_output=True, text=True, check=True, timeout=60
        )
        return ran.stdout

    clock = SystemClock()
    cloud_run = CloudRunAdmin.from_gcloud_config(
        gcloud_config(runner),
        project.id,
        REGION,
        project.service,
        runner,
        polling=Polling(clock.now, clock.sleep_until, timedelta(seconds=30)),
        deadline=clock.now() + timedelta(minutes=5),
    )
    stable = project.bootstrap_revision
    read = cloud_run.describe()
    assert read.split() == {stable: 100}
    assert deploy(stand_ins, project, "seven").returncode == 0  # someone else's write, after the rollout's read
    with pytest.raises(TrafficConflict, match="someone else changed it, and their change stands"):
        cloud_run.write_traffic(read, {stable: 100}, {"stable": stable})
    now = cloud_run.describe()
    assert now.tags() == {"c-seven": "birthday-api-seven"}, "the 409 left their tag in place"
    written = cloud_run.write_traffic(now, {stable: 90, "birthday-api-seven": 10}, {**now.tags(), "stable": stable})
    assert written.complaint is None
    assert written.service.observed_generation == written.service.generation == now.generation + 1
    assert written.service.split() == {stable: 90, "birthday-api-seven": 10}, "applied: status.traffic, not just spec"
    assert written.service.served_tags() == {"c-seven": "birthday-api-seven", "stable": stable}


def test_traffic_that_does_not_add_up_to_100_is_400_invalid_argument(stand_ins: Cloud, project: Project) -> None:
    path = f"/apis/serving.knative.dev/v1/namespaces/{project.id}/services/{project.service}"
    _, read = api(stand_ins, "GET", path)
    read["spec"]["traffic"] = [{"revisionName": project.bootstrap_revision, "percent": 90}]
    status, body = api(stand_ins, "PUT", path, read)
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert "sum to 90, want 100" in body["error"]["message"]


def test_a_revision_that_fails_its_startup_probe_never_gets_traffic_and_its_tag_stays_in_the_spec(
    stand_ins: Cloud, project: Project
) -> None:
    failed = deploy(stand_ins, project, "never", Behaviour(program="hello", startup_probe_fails=True), QUICK_FAILURE)
    assert failed.returncode == 1
    assert "Revision 'birthday-api-never' is not ready and cannot serve traffic" in failed.stderr
    assert "failed the configured startup probe checks" in failed.stderr
    body = describe(stand_ins, project.id)
    conditions = {entry["type"]: entry for entry in body["status"]["conditions"]}
    assert conditions["Ready"]["status"] == conditions["RoutesReady"]["status"] == "False"
    assert conditions["ConfigurationsReady"]["reason"] == "RevisionFailed"
    assert body["status"]["latestCreatedRevisionName"] == "birthday-api-never"
    assert body["status"]["latestReadyRevisionName"] == project.bootstrap_revision
    assert {"revisionName": "birthday-api-never", "tag": "c-never"} in body["spec"]["traffic"]
    assert [entry["revisionName"] for entry in body["status"]["traffic"]] == [project.bootstrap_revision]
    assert not [one for one in stand_ins.served(project.id) if one.revision == "birthday-api-never"]
    # While the spec names it, every later deploy waits on it and fails, as in Cloud Run.
    later = deploy(stand_ins, project, "later")
    assert later.returncode == 1
    assert "birthday-api-never" in later.stderr


def test_a_revision_named_again_with_another_template_is_409_already_exists(stand_ins: Cloud, project: Project) -> None:
    assert deploy(stand_ins, project, "seven").returncode == 0
    again = deploy(stand_ins, project, "seven", FAST, "--concurrency=5")
    assert again.returncode == 1
    assert "Revision named 'birthday-api-seven' with different configuration already exists" in again.stderr


def test_a_call_no_stand_in_models_is_refused_naming_it_and_reported(stand_ins: Cloud, project: Project) -> None:
    before = len(stand_ins.not_understood)
    deleted = gcloud(stand_ins, project.id, "run", "services", "delete", project.service)
    assert deleted.returncode == 1
    assert "does not model DELETE" in deleted.stderr
    assert "DELETE" in stand_ins.not_understood[before]
    del stand_ins.not_understood[before:]
