"""The gated rollout, scenario by scenario, against in-memory Cloud Run, bucket and Monitoring."""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from deploy.cloud_run import CloudRunError, Split
from deploy.gates import Thresholds
from deploy.lock import RolloutBlocked, freeze_name, lock_name
from deploy.metrics import RequestStats, Window
from deploy.revision import RevisionTemplate
from deploy.rollout import OperatorIntervened, Rollout, RolloutFailed, RolloutPlan
from deploy.smoke import SmokeReport
from tests.support.fake_cloud import FakeCloudRun, FakeObjectStore, JumpingClock, ScriptedMetrics

SERVICE = "birthday-api"
STABLE = f"{SERVICE}-1111111-aaaaaa"
BOOTSTRAP = f"{SERVICE}-bootstrap"
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
HEALTHY = RequestStats(total=500, server_errors=0, p99_ms=120)

PLAN = RolloutPlan(
    service=SERVICE,
    image="europe-west1-docker.pkg.dev/p/birthday-api/app@sha256:" + "c" * 64,
    commit="2222222bbbbbbb",
    attempt="8f00d1e2-0000",
    service_account="runtime@p.iam.gserviceaccount.com",
    template=RevisionTemplate.load(),
    bootstrap_revision=BOOTSTRAP,
)
CANDIDATE = PLAN.candidate_revision


def healthy(revision: str, window: Window) -> RequestStats:
    return HEALTHY


class World:
    """One service, its bucket, its metrics and a clock, and the rollout that runs against them."""

    def __init__(
        self,
        cloud_run: FakeCloudRun | None = None,
        metrics: Callable[[str, Window], RequestStats] = healthy,
        smoke_fails: bool = False,
        plan: RolloutPlan = PLAN,
    ) -> None:
        self.cloud_run = cloud_run or FakeCloudRun.serving(SERVICE, STABLE)
        self.objects = FakeObjectStore()
        self.metrics = ScriptedMetrics(metrics)
        self.clock = JumpingClock(START)
        self.smoked: list[str] = []
        self.log: list[str] = []
        self.smoke_fails = smoke_fails
        self.plan = plan

    def smoke(self, url: str) -> SmokeReport:
        self.smoked.append(url)
        return SmokeReport(url, failures=["readiness answers 200: expected 200, got 503"] if self.smoke_fails else [])

    def rollout(self) -> Rollout:
        return Rollout(self.plan, self.cloud_run, self.metrics, self.objects, self.smoke, self.clock, self.log.append)

    def traffic_changes(self) -> list[str]:
        return [call for call in self.cloud_run.calls if call.startswith("traffic")]


def test_happy_path_moves_traffic_in_steps_and_ends_on_the_candidate() -> None:
    world = World()
    world.rollout().run()

    assert world.traffic_changes() == [
        f"traffic {{'{STABLE}': 90, '{CANDIDATE}': 10}}",
        f"traffic {{'{STABLE}': 50, '{CANDIDATE}': 50}}",
        f"traffic {{'{CANDIDATE}': 100}}",
    ]
    assert world.cloud_run.traffic == {CANDIDATE: 100}
    assert world.smoked == [world.cloud_run.url_of(PLAN.candidate_tag)]
    assert world.cloud_run.tags == {}, "the temporary tag is cleaned up"
    assert world.objects.objects == {}, "the lock is released"
    deployed = world.cloud_run.deployed[0]
    assert (deployed.image, deployed.tag, deployed.template) == (PLAN.image, PLAN.candidate_tag, PLAN.template)


def test_the_candidate_is_deployed_and_smoke_tested_before_any_traffic_moves() -> None:
    world = World()
    world.rollout().run()
    calls = world.cloud_run.calls
    first_shift = calls.index(world.traffic_changes()[0])
    assert calls.index(f"deploy {CANDIDATE}") < first_shift
    assert world.smoked, "smoke ran"


def test_smoke_failure_moves_no_traffic_and_tags_the_candidate_failed() -> None:
    world = World(smoke_fails=True)
    with pytest.raises(RolloutFailed, match=r"smoke test .* failed, no traffic moved"):
        world.rollout().run()
    assert world.traffic_changes() == []
    assert world.cloud_run.traffic == {STABLE: 100}
    assert world.cloud_run.tags == {PLAN.failed_tag: CANDIDATE}
    assert world.objects.objects == {}, "the lock is released after a failure too"


def test_a_revision_that_never_becomes_ready_moves_no_traffic() -> None:
    world = World(FakeCloudRun.serving(SERVICE, STABLE))
    world.cloud_run.unready_images.add(PLAN.image)
    with pytest.raises(RolloutFailed, match=r"deploy of .* failed, no traffic moved"):
        world.rollout().run()
    assert world.traffic_changes() == []
    assert world.smoked == []


@pytest.mark.parametrize("failing_step", [10, 50, 100])
def test_a_gate_failure_at_any_step_rolls_back_to_stable(failing_step: int) -> None:
    def errors_from_the_failing_step(revision: str, window: Window) -> RequestStats:
        if revision == CANDIDATE and world.cloud_run.traffic.get(CANDIDATE) == failing_step:
            return RequestStats(total=400, server_errors=40, p99_ms=120)
        return HEALTHY

    world = World(metrics=errors_from_the_failing_step)
    with pytest.raises(RolloutFailed) as failure:
        world.rollout().run()
    # Every step up to the failing one, then the rollback.
    assert len(world.traffic_changes()) == PLAN.steps.index(failing_step) + 2
    assert world.traffic_changes()[-1] == f"traffic {{'{STABLE}': 100}}"
    assert world.cloud_run.traffic == {STABLE: 100}
    assert world.cloud_run.tags == {PLAN.failed_tag: CANDIDATE}
    message = str(failure.value)
    assert f"gate at {failing_step} % failed" in message
    assert "error rate: 10.00% 5xx (40/400) over the 1.00% limit" in message
    assert f"100 % is back on {STABLE}" in message


def test_metrics_that_cannot_be_read_fail_the_gate_and_roll_back() -> None:
    def monitoring_down(revision: str, window: Window) -> RequestStats:
        raise OSError("monitoring.googleapis.com: 503 Service Unavailable")

    world = World(metrics=monitoring_down)
    with pytest.raises(RolloutFailed, match=r"gate at 10 % failed .*could not shift or judge: OSError: monitoring"):
        world.rollout().run()
    assert world.cloud_run.traffic == {STABLE: 100}
    assert world.cloud_run.tags == {PLAN.failed_tag: CANDIDATE}


@pytest.mark.parametrize("applied", [False, True], ids=["refused", "applied-then-reported-failed"])
def test_a_failed_traffic_change_mid_canary_rolls_back(applied: bool) -> None:
    def fail_at_50(cloud_run: FakeCloudRun, split: Split) -> None:
        if split.get(CANDIDATE) == 50:
            if applied:
                cloud_run.traffic = dict(split)
            raise CloudRunError("deadline exceeded")

    world = World()
    world.cloud_run.on_set_traffic = fail_at_50
    with pytest.raises(RolloutFailed, match=r"gate at 50 % failed .*CloudRunError: deadline exceeded"):
        world.rollout().run()
    assert world.cloud_run.traffic == {STABLE: 100}
    assert world.cloud_run.tags == {PLAN.failed_tag: CANDIDATE}


def test_a_failed_rollback_says_so_and_how_to_finish_it_by_hand() -> None:
    def refuse_the_rollback(cloud_run: FakeCloudRun, split: Split) -> None:
        if split == {STABLE: 100}:
            raise CloudRunError("permission denied")

    world = World(metrics=lambda revision, window: RequestStats(400, 40, 100))
    world.cloud_run.on_set_traffic = refuse_the_rollback
    with pytest.raises(RolloutFailed, match=rf"ROLLBACK FAILED.*--to-revisions={STABLE}=100"):
        world.rollout().run()
    assert world.objects.objects == {}, "the lock is released all the same"


def test_a_first_deploy_whose_traffic_change_fails_is_tagged_failed() -> None:
    def refuse(cloud_run: FakeCloudRun, split: Split) -> None:
        raise CloudRunError("quota exceeded")

    world = World(FakeCloudRun.serving(SERVICE, BOOTSTRAP))
    world.cloud_run.on_set_traffic = refuse
    with pytest.raises(RolloutFailed, match="could not send traffic"):
        world.rollout().run()
    assert world.cloud_run.traffic == {BOOTSTRAP: 100}
    assert world.cloud_run.tags == {PLAN.failed_tag: CANDIDATE}


def test_latency_over_the_limit_fails_the_gate_with_its_figures() -> None:
    world = World(metrics=lambda revision, window: RequestStats(300, 0, 2400 if revision == CANDIDATE else 150))
    with pytest.raises(RolloutFailed, match=r"latency: p99 2400 ms over the 1000 ms limit.*latency vs stable"):
        world.rollout().run()
    assert world.cloud_run.traffic == {STABLE: 100}


def test_too_few_requests_waits_longer_then_fails_safe() -> None:
    world = World(metrics=lambda revision, window: RequestStats(total=5, server_errors=0, p99_ms=100))
    with pytest.raises(RolloutFailed, match="fewer than the 30 needed to judge"):
        world.rollout().run()
    candidate_windows = [window for revision, window in world.metrics.queries if revision == CANDIDATE]
    assert [window.seconds for window in candidate_windows] == list(range(300, 900 + 1, 60))
    assert world.cloud_run.traffic == {STABLE: 100}


def test_enough_requests_after_a_longer_wait_passes() -> None:
    def slow_traffic(revision: str, window: Window) -> RequestStats:
        return RequestStats(total=window.seconds // 12, server_errors=0, p99_ms=100)

    world = World(metrics=slow_traffic)
    world.rollout().run()
    assert world.cloud_run.traffic == {CANDIDATE: 100}
    assert any(window.seconds == 360 for _, window in world.metrics.queries)


def test_the_metrics_window_starts_after_the_shift_plus_the_lag_and_reads_the_candidate_alone() -> None:
    world = World()
    world.rollout().run()
    first_revision, first_window = world.metrics.queries[0]
    assert first_revision == CANDIDATE
    # The shift happens at START (the clock has not moved before it); the window skips the lag after it.
    assert first_window.start == START + PLAN.metrics_lag
    assert first_window.end == first_window.start + PLAN.dwell
    # The window is read only once the lag has passed its end.
    assert world.clock.sleeps[0] == first_window.end + PLAN.metrics_lag
    assert world.metrics.queries[1] == (STABLE, first_window), "the stable revision over the same window"


def test_the_stable_revision_is_the_yardstick_while_it_serves() -> None:
    def worse_than_stable(revision: str, window: Window) -> RequestStats:
        return RequestStats(1000, 8, 100) if revision == CANDIDATE else RequestStats(1000, 0, 100)

    world = World(metrics=worse_than_stable)
    with pytest.raises(RolloutFailed, match=r"error rate vs stable: 0.80% against 0.00%"):
        world.rollout().run()


def test_lock_already_held_changes_nothing() -> None:
    world = World()
    held = '{"holder": "3333333 attempt other", "expires": "2026-11-30T10:00:00+00:00"}'
    world.objects.objects[lock_name(SERVICE)] = (held, 7)
    with pytest.raises(RolloutBlocked, match="locked by 3333333 attempt other"):
        world.rollout().run()
    assert world.cloud_run.calls == []
    assert world.objects.objects[lock_name(SERVICE)] == (held, 7), "someone else's lock is left alone"


def test_an_expired_lock_is_taken_over() -> None:
    world = World()
    expired = '{"holder": "crashed build", "expires": "2026-11-30T08:00:00+00:00"}'
    world.objects.objects[lock_name(SERVICE)] = (expired, 7)
    world.rollout().run()
    assert world.cloud_run.traffic == {CANDIDATE: 100}


def test_freeze_blocks_the_rollout_before_anything_happens() -> None:
    world = World()
    world.objects.objects[freeze_name(SERVICE)] = ("incident 42: hold all deploys\n", 3)
    with pytest.raises(RolloutBlocked, match=r"frozen .*incident 42"):
        world.rollout().run()
    assert world.cloud_run.calls == []
    assert lock_name(SERVICE) not in world.objects.objects


def test_an_operator_changing_traffic_mid_rollout_stops_it_without_a_fight() -> None:
    def operator_sends_everything_back(cloud_run: FakeCloudRun, ordinal: int) -> None:
        if ordinal == 4:  # after the 10 % step, before the 50 % step
            cloud_run.traffic = {STABLE: 100}

    world = World(FakeCloudRun.serving(SERVICE, STABLE))
    world.cloud_run.on_describe = operator_sends_everything_back
    with pytest.raises(OperatorIntervened, match="someone else changed it"):
        world.rollout().run()
    assert len(world.traffic_changes()) == 1, "only the 10 % step, nothing after the operator acted"
    assert world.cloud_run.traffic == {STABLE: 100}
    assert world.objects.objects == {}


def test_an_existing_split_blocks_the_rollout() -> None:
    cloud_run = FakeCloudRun.serving(SERVICE, STABLE)
    cloud_run.revisions["other"] = "img"
    cloud_run.traffic = {STABLE: 70, "other": 30}
    world = World(cloud_run)
    with pytest.raises(RolloutBlocked, match="traffic is split"):
        world.rollout().run()
    assert world.traffic_changes() == []


@pytest.mark.parametrize("serving", [BOOTSTRAP, None])
def test_first_deploy_is_smoke_tested_then_takes_all_traffic(serving: str | None) -> None:
    cloud_run = FakeCloudRun.serving(SERVICE, BOOTSTRAP) if serving else FakeCloudRun(SERVICE)
    world = World(cloud_run)
    world.rollout().run()
    assert world.smoked
    assert world.traffic_changes() == [f"traffic {{'{CANDIDATE}': 100}}"]
    assert world.metrics.queries == []
    assert any("first deploy" in line for line in world.log)


def test_rerunning_the_same_commit_makes_a_new_revision() -> None:
    world = World()
    world.rollout().run()
    world.plan = replace(PLAN, attempt="9a9a9a9a-1111")
    world.rollout().run()
    second = world.plan.candidate_revision
    assert second != CANDIDATE
    assert world.cloud_run.traffic == {second: 100}


def test_the_same_attempt_twice_is_refused_by_cloud_run_not_overwritten() -> None:
    world = World()
    world.rollout().run()
    world.cloud_run.traffic = {STABLE: 100}
    with pytest.raises(RolloutFailed, match="already exists"):
        world.rollout().run()
    assert world.cloud_run.traffic == {STABLE: 100}


@pytest.mark.parametrize("steps", [(), (10, 50), (50, 10, 100), (0, 100), (10, 10, 100), (10, 150)])
def test_traffic_steps_must_rise_and_end_at_100(steps: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="traffic steps"):
        replace(PLAN, steps=steps)


def test_every_action_is_logged_with_revision_names_and_figures() -> None:
    world = World()
    world.rollout().run()
    text = "\n".join(world.log)
    assert f"stable revision: {STABLE}" in text
    assert f"deploying {CANDIDATE}" in text
    assert f"traffic: {STABLE}=100 -> {STABLE}=90, {CANDIDATE}=10" in text
    assert "gate at 10 % passed: candidate 500 requests, 0 5xx (0.00%), p99 120 ms" in text


def test_gate_thresholds_are_configurable() -> None:
    strict = replace(PLAN, thresholds=Thresholds(max_p99_ms=100))
    world = World(plan=strict)
    with pytest.raises(RolloutFailed, match="latency: p99 120 ms over the 100 ms limit"):
        world.rollout().run()


def test_timeline_of_a_default_rollout_fits_the_lock() -> None:
    worst_step = PLAN.metrics_lag + PLAN.dwell + PLAN.max_extra_wait + PLAN.metrics_lag
    assert worst_step * len(PLAN.steps) < PLAN.lock_ttl
    assert timedelta(0) < PLAN.poll <= PLAN.max_extra_wait
