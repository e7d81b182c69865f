"""The rehearsal's revisions and router: faults injected in front of real processes by image reference, probes,
restarts, and the service URL split exactly as status.traffic says."""

import asyncio
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest

from rehearsal.cloud import Cloud
from rehearsal.faults import Behaviour, Registry
from rehearsal.knative import Revision
from rehearsal.revisions import Probe, Reply, RevisionRuntime, RunningRevision
from rehearsal.router import REVISION_HEADER, WeightedChoice
from rehearsal.seed import Project, service_body


def test_an_error_share_is_spread_evenly_with_no_period_and_may_start_late() -> None:
    fifth = Behaviour(server_error_share=0.2)
    failing = [number for number in range(1, 1001) if fifth.fails(number)]
    for start in range(1, 901):
        assert abs(sum(1 for number in failing if start <= number < start + 100) - 20) <= 2, "even in any 100"
    assert {number % 5 for number in failing} == set(range(5)), "no period of 5 to lock into step with a load"
    late = Behaviour(server_error_share=0.2, errors_after_requests=10)
    assert [number for number in range(1, 31) if late.fails(number)] == [
        number + 10 for number in failing if number <= 20
    ]
    assert not any(Behaviour().fails(number) for number in range(1, 100))


def test_an_image_is_found_only_by_the_reference_it_was_pushed_under() -> None:
    registry = Registry()
    image = registry.push("europe-west1-docker.pkg.dev/p/r/app", "release-1", Behaviour(slowdown=3))
    assert image.startswith("europe-west1-docker.pkg.dev/p/r/app@sha256:")
    assert registry.behaviour(image) == Behaviour(slowdown=3)
    assert registry.behaviour(image.replace("app@", "other@")) is None


def test_weighted_choice_gives_each_revision_exactly_its_percent() -> None:
    choice = WeightedChoice()
    split = (("candidate", 10), ("stable", 90))
    assert Counter(choice.pick(split) for _ in range(100)) == {"candidate": 10, "stable": 90}


def test_without_a_startup_probe_the_default_is_cloud_runs_tcp_check() -> None:
    probe = Probe.of(None, {"tcpSocket": {}, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 240})
    assert probe.path is None
    assert probe.period * probe.failure_threshold == 240
    http = Probe.of({"httpGet": {"path": "/health/ready"}, "periodSeconds": 2, "failureThreshold": 15}, {})
    assert (http.path, http.period, http.failure_threshold, http.timeout) == ("/health/ready", 2, 15, 1)


def test_a_slow_release_takes_its_factor_times_what_the_process_took(monkeypatch: pytest.MonkeyPatch) -> None:
    body = service_body(Project("p"), "svc-slow", "image")["spec"]["template"]
    revision = Revision("p", "svc", {"metadata": body["metadata"], "spec": body["spec"]}, body)

    async def answer_in_50_ms(*_: object) -> Reply:
        await asyncio.sleep(0.05)
        return Reply.text(200, "ok")

    async def one_request() -> float:
        runtime = RevisionRuntime(Registry(), lambda revision, port: {}, Path(), lambda *report: None)
        running = RunningRevision(runtime, revision, Behaviour(slowdown=3))
        running.instance = object()  # type: ignore[assignment]
        running.serving.set()
        monkeypatch.setattr(running, "_forward", answer_in_50_ms)
        started = time.monotonic()
        reply = await running.handle("GET", "/hello/x", [], b"")
        assert reply.status == 200
        return time.monotonic() - started

    assert 0.15 <= asyncio.run(one_request()) < 0.3


@pytest.mark.slow
def test_a_crashing_release_is_restarted_and_serves_again(stand_ins: Cloud) -> None:
    project = Project(f"crash-{uuid.uuid4().hex[:8]}")
    image = stand_ins.registry.push("r/app", f"{project.id}/crash", Behaviour(program="hello", crash_after_requests=3))
    stand_ins.create_service(project.id, service_body(project, f"{project.service}-crash", image))
    name = (project.id, f"{project.service}-crash")
    stand_ins.wait_until(
        lambda: name in stand_ins.runtime.running and stand_ins.runtime.running[name].serving.is_set(),
        timeout=30,
        what="the revision serving",
    )
    url = stand_ins.service(project.id, project.service)["status"]["url"]
    statuses: list[int] = []
    deadline = time.monotonic() + 30
    while len(statuses) < 4 or (statuses[-1] != 200 and time.monotonic() < deadline):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
                statuses.append(response.status)
                assert response.headers[REVISION_HEADER] == name[1]
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
    assert statuses[:3] == [200, 200, 200]
    assert statuses[-1] == 200
    assert stand_ins.call(lambda: stand_ins.runtime.running[name].restarts) >= 1


@pytest.mark.slow
def test_an_image_that_is_not_in_the_registry_never_becomes_ready(stand_ins: Cloud) -> None:
    project = Project(f"missing-{uuid.uuid4().hex[:8]}")
    stand_ins.create_service(project.id, service_body(project, f"{project.service}-gone", "r/app@sha256:" + "0" * 64))
    key = (project.id, project.service)
    stand_ins.wait_until(
        lambda: stand_ins.cloud_run.services[key].body["status"].get("conditions", [{}])[0].get("status") == "False",
        timeout=10,
        what="the service failing",
    )
    ready = stand_ins.cloud_run.services[key].body["status"]["conditions"][0]
    assert "Image 'r/app@sha256:" in ready["message"]
    assert "not found" in ready["message"]
