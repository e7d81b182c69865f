"""The gated rollout, scenario by scenario: the real Rollout and its real gcloud adapters, against Cloud Run and
the bucket as gcloud sees them (tests/support), scripted Monitoring and a clock that jumps."""

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from deploy.builds import GcloudBuilds
from deploy.gates import Thresholds
from deploy.gcloud import GcloudError, Runner
from deploy.lock import GcsObjectStore, RolloutBlocked, freeze_name, lock_name, release_name
from deploy.metrics import Percentile, RequestStats, Window
from deploy.revision import RevisionTemplate
from deploy.rollout import (
    BUILD_TIME_LABEL,
    COMMIT_LABEL,
    OperatorIntervened,
    Rollout,
    RolloutFailed,
    RolloutPlan,
    Terminated,
    build_time_label,
)
from deploy.smoke import SmokeReport
from tests.support.fake_cloud import (
    CountingLoad,
    FakeCloudRun,
    HttpError,
    JumpingClock,
    MinuteMetrics,
    ScriptedMetrics,
    cloud_run_admin,
)
from tests.support.fake_cloud_build import FakeBuilds
from tests.support.fake_gcloud_storage import FakeBucket

SERVICE = "birthday-api"
STABLE = f"{SERVICE}-1111111-aaaaaa"
BOOTSTRAP = f"{SERVICE}-bootstrap"
BUCKET = "p-birthday-api-rollout"
START = datetime(2026, 11, 30, 9, 0, 30, tzinfo=UTC)
STABLE_BUILT = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
FAST = Percentile(120, 64, 128)

PLAN = RolloutPlan(
    service=SERVICE,
    image="europe-west1-docker.pkg.dev/p/birthday-api/app@sha256:" + "c" * 64,
    commit="2222222bbbbbbb",
    attempt="8f00d1e2-0000",
    service_account="runtime@p.iam.gserviceaccount.com",
    template=RevisionTemplate.load(),
    bootstrap_revision=BOOTSTRAP,
    source_build_time=datetime(2026, 11, 30, 8, 40, tzinfo=UTC),
)
CANDIDATE = PLAN.candidate_revision


def stats(window: Window, total: int, errors: int = 0, p99: Percentile | None = FAST) -> RequestStats:
    """Figures for a window whose data has all arrived: a point in every minute."""
    return RequestStats(total, errors, p99, window.seconds // 60)


def healthy(revision: str, window: Window) -> RequestStats:
    return stats(window, 600)


def serving_stable() -> FakeCloudRun:
    return FakeCloudRun.serving(SERVICE, STABLE)


def last_release(revision: str, commit: str, built: datetime) -> tuple[str, str]:
    """The bucket's record of the last promoted release, as an earlier rollout left it."""
    record = {"revision": revision, COMMIT_LABEL: commit, BUILD_TIME_LABEL: build_time_label(built)}
    return f"gs://{BUCKET}/{release_name(SERVICE)}", json.dumps(record)


class World:
    """One service, its bucket, its metrics, a synthetic load and a clock, and the rollout that runs on them."""

    def __init__(
        self,
        cloud_run: FakeCloudRun | None = None,
        metrics: Callable[[str, Window], RequestStats] = healthy,
        smoke_fails: bool = False,
        plan: RolloutPlan = PLAN,
    ) -> None:
        self.cloud_run = cloud_run or serving_stable()
        url, record = last_release(STABLE, "1111111" + "a" * 33, STABLE_BUILT)
        self.bucket = FakeBucket({url: (record, 1)} if cloud_run is None else {})
        self.clock = JumpingClock(START)
        self.metrics = ScriptedMetrics(metrics)
        self.load = CountingLoad(self.clock)
        self.smoked: list[str] = []
        self.log: list[str] = []
        self.smoke_fails = smoke_fails
        self.smoke_takes = timedelta(0)
        self.plan = plan
        self.builds = FakeBuilds({plan.attempt: "WORKING"})
        self.storage: Runner = self.bucket
        """How the rollout reaches the bucket: the bucket itself, unless a test puts something in between."""

    def smoke(self, url: str) -> SmokeReport:
        self.smoked.append(url)
        self.clock.current += self.smoke_takes
        return SmokeReport(url, failures=["readiness answers 200: expected 200, got 503"] if self.smoke_fails else [])

    def rollout(self) -> Rollout:
        cloud_run = cloud_run_admin(self.cloud_run, self.clock)
        objects = GcsObjectStore(BUCKET, self.storage)
        builds = GcloudBuilds("p", "europe-west1", self.builds)
        return Rollout(
            self.plan, cloud_run, self.metrics, objects, self.smoke, self.load, self.clock, self.log.append, builds
        )

    def lock_held(self) -> bool:
        return f"gs://{BUCKET}/{lock_name(SERVICE)}" in self.bucket.objects

    def freeze(self, reason: str) -> None:
        self.bucket.objects[f"gs://{BUCKET}/{freeze_name(SERVICE)}"] = (reason, 1)

    def text(self) -> str:
        return "\n".join(self.log)


def at_step(world: World, percent: int, action: Callable[[], None]) -> None:
    """Run `action` once, while the rollout waits on the gate of the step that gave the candidate `percent`."""

    def on_sleep(moment: datetime) -> None:
        if world.cloud_run.asked().get(CANDIDATE) == percent and not done:
            done.append(True)
            action()

    done: list[bool] = []
    world.clock.on_sleep = on_sleep


# -- the happy path --------------------------------------------------------------------------------


def test_happy_path_moves_traffic_in_steps_and_ends_on_the_candidate() -> None:
    world = World()
    world.rollout().run()

    assert world.cloud_run.traffic_writes() == [
        {STABLE: 100},
        {STABLE: 90, CANDIDATE: 10},
        {STABLE: 50, CANDIDATE: 50},
        {CANDIDATE: 100},
    ]
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert world.smoked == [world.cloud_run.url_of(PLAN.candidate_tag)]
    assert world.cloud_run.spec_tags() == {"stable": CANDIDATE}, "the candidate tag is gone, stable moved"
    assert world.cloud_run.ready()
    assert not world.lock_held()


def test_the_candidate_is_deployed_and_smoke_tested_before_any_traffic_moves() -> None:
    world = World()
    world.rollout().run()
    calls = world.cloud_run.calls
    assert calls.index(f"run deploy {SERVICE}") < [i for i, call in enumerate(calls) if "replace" in call][1]
    assert world.smoked


def test_smoke_failure_moves_no_traffic_and_tags_the_candidate_failed() -> None:
    world = World(smoke_fails=True)
    with pytest.raises(RolloutFailed, match=r"smoke test .* failed, no traffic moved"):
        world.rollout().run()
    assert world.cloud_run.served() == {STABLE: 100}
    assert world.cloud_run.spec_tags() == {"stable": STABLE, PLAN.failed_tag: CANDIDATE}
    assert world.cloud_run.ready()
    assert not world.lock_held()


@pytest.mark.parametrize("failing_step", [10, 50, 100])
def test_a_gate_failure_at_any_step_rolls_back_to_stable(failing_step: int) -> None:
    def errors_from_the_failing_step(revision: str, window: Window) -> RequestStats:
        if revision == CANDIDATE and world.cloud_run.asked().get(CANDIDATE) == failing_step:
            return stats(window, 400, errors=40)
        return healthy(revision, window)

    world = World(metrics=errors_from_the_failing_step)
    with pytest.raises(RolloutFailed) as failure:
        world.rollout().run()
    assert len(world.cloud_run.traffic_writes()) == PLAN.steps.index(failing_step) + 3
    assert world.cloud_run.traffic_writes()[-1] == {STABLE: 100}
    assert world.cloud_run.served() == {STABLE: 100}
    assert world.cloud_run.spec_tags() == {"stable": STABLE, PLAN.failed_tag: CANDIDATE}
    message = str(failure.value)
    assert f"gate at {failing_step} % failed" in message
    assert "error rate: 10.00% 5xx (40/400), at least 7.43% with 95 % confidence, over the 1.00% limit" in message
    assert f"100 % is back on {STABLE}" in message


def test_at_100_percent_the_candidate_is_judged_on_the_limits_alone() -> None:
    # The candidate carries every user and the stable only the synthetic load: its p99 is no yardstick then.
    loaded = Percentile(600, 512, 1024)

    def figures(revision: str, window: Window) -> RequestStats:
        all_traffic = world.cloud_run.asked().get(CANDIDATE) == 100
        return stats(window, 600, p99=loaded if revision == CANDIDATE and all_traffic else FAST)

    world = World(metrics=figures)
    world.rollout().run()
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert "gate at 100 % passed: candidate 600 requests, 0 5xx (0.00%), p99 600 ms" in world.text()


def test_latency_over_the_limit_fails_the_gate_with_its_figures() -> None:
    slow = Percentile(2400, 2048, 4096)
    world = World(metrics=lambda revision, window: stats(window, 300, p99=slow if revision == CANDIDATE else FAST))
    with pytest.raises(RolloutFailed, match=r"latency: p99 2400 ms over the 1000 ms limit.*latency vs stable"):
        world.rollout().run()
    assert world.cloud_run.served() == {STABLE: 100}


def test_the_stable_revision_is_the_yardstick_while_it_serves() -> None:
    def worse_than_stable(revision: str, window: Window) -> RequestStats:
        return stats(window, 2000, errors=40 if revision == CANDIDATE else 0)

    world = World(metrics=worse_than_stable)
    with pytest.raises(RolloutFailed, match=r"error rate vs stable: 2.00% \(at least 1.4.%\) against 0.00%"):
        world.rollout().run()


def test_gate_thresholds_are_configurable() -> None:
    world = World(plan=replace(PLAN, thresholds=Thresholds(max_p99_ms=100)))
    with pytest.raises(RolloutFailed, match="latency: p99 120 ms over the 100 ms limit"):
        world.rollout().run()


def test_every_action_is_logged_with_revision_names_and_figures() -> None:
    world = World()
    world.rollout().run()
    text = world.text()
    assert f"stable revision: {STABLE}" in text
    assert f"deploying {CANDIDATE}" in text
    assert f"traffic -> {STABLE}=90, {CANDIDATE}=10" in text
    assert "gate at 10 % passed: candidate 600 requests, 0 5xx (0.00%), p99 120 ms" in text
    assert f"done: {CANDIDATE} serves 100 %" in text


def test_first_deploy_is_smoke_tested_then_takes_all_traffic() -> None:
    world = World(FakeCloudRun.serving(SERVICE, BOOTSTRAP))
    world.rollout().run()
    assert world.smoked
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert world.metrics.queries == []
    assert any("first deploy" in line for line in world.log)
    assert world.cloud_run.spec_tags() == {"stable": CANDIDATE}


def test_a_first_deploy_whose_traffic_change_fails_drops_its_tag() -> None:
    world = World(FakeCloudRun.serving(SERVICE, BOOTSTRAP))
    world.cloud_run.before_put = refuse_when({BOOTSTRAP: 100}, tagged=PLAN.candidate_tag)
    with pytest.raises(RolloutFailed, match=r"could not send traffic to .*Quota exceeded"):
        world.rollout().run()
    assert world.cloud_run.served() == {BOOTSTRAP: 100}
    assert PLAN.candidate_tag not in world.cloud_run.spec_tags()


def refuse_when(asked_now: dict[str, int], tagged: str | None = None) -> Callable[[FakeCloudRun, str], None]:
    """The first traffic write while the service asks for `asked_now` (with `tagged` on it) is refused by the API."""
    refused: list[str] = []

    def refuse(fake: FakeCloudRun, command: str) -> None:
        tags_match = tagged is None or tagged in fake.spec_tags()
        if command == "replaceService" and fake.asked() == asked_now and tags_match and not refused:
            refused.append(command)
            raise HttpError(429, "Quota exceeded")

    return refuse


def test_lock_already_held_changes_nothing() -> None:
    world = World()
    held = '{"holder": "3333333 attempt other", "expires": "2026-11-30T10:00:00+00:00", "state": {}}'
    world.bucket.objects[f"gs://{BUCKET}/{lock_name(SERVICE)}"] = (held, 7)
    with pytest.raises(RolloutBlocked, match="locked by 3333333 attempt other"):
        world.rollout().run()
    assert world.cloud_run.calls == []
    assert world.bucket.objects[f"gs://{BUCKET}/{lock_name(SERVICE)}"] == (held, 7)


def test_freeze_blocks_the_rollout_before_anything_happens() -> None:
    world = World()
    world.freeze("incident 42: hold all deploys\n")
    with pytest.raises(RolloutBlocked, match=r"frozen .*incident 42"):
        world.rollout().run()
    assert world.cloud_run.calls == []
    assert not world.lock_held()


def test_an_existing_split_blocks_the_rollout() -> None:
    world = World()
    world.rollout().run()
    world.plan = replace(PLAN, attempt="9a9a9a9a")
    world.cloud_run.operator(f"--to-revisions={STABLE}=70,{CANDIDATE}=30")
    with pytest.raises(RolloutBlocked, match="traffic is split"):
        world.rollout().run()


@pytest.mark.parametrize("steps", [(), (10, 50), (50, 10, 100), (0, 100), (10, 10, 100), (10, 150)])
def test_traffic_steps_must_rise_and_end_at_100(steps: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="traffic steps"):
        replace(PLAN, steps=steps)


def test_settings_that_cannot_finish_before_the_deadline_are_refused() -> None:
    with pytest.raises(ValueError, match="beyond the 1:00:00 deadline"):
        replace(PLAN, deadline=timedelta(hours=1))
    with pytest.raises(ValueError, match="whole number of metrics periods"):
        replace(PLAN, dwell=timedelta(seconds=90))


# -- 1. a re-run of the same commit ----------------------------------------------------------------


def test_a_rerun_of_the_serving_commit_makes_a_new_revision_and_ships() -> None:
    world = World()
    world.rollout().run()
    world.plan = replace(PLAN, attempt="9a9a9a9a-1111")
    world.rollout().run()
    assert world.plan.candidate_revision != CANDIDATE
    assert world.cloud_run.served() == {world.plan.candidate_revision: 100}
    assert f"the last release, {CANDIDATE} (commit 2222222, built 20261130084000000000), is this same commit" in (
        world.text()
    )


# -- 2. a revision that never becomes ready --------------------------------------------------------


def test_a_revision_that_never_becomes_ready_leaves_no_tag_and_the_next_rollout_ships() -> None:
    world = World()
    world.cloud_run.never_ready_images.add(PLAN.image)
    with pytest.raises(RolloutFailed, match=r"(?s)deploy of .* failed, no traffic moved: .*is not ready"):
        world.rollout().run()
    assert world.cloud_run.served() == {STABLE: 100}
    assert CANDIDATE not in world.cloud_run.spec_tags().values(), "no tag points at the unready revision"
    assert world.cloud_run.spec_tags() == world.cloud_run.served_tags()
    assert world.smoked == []

    fixed = replace(PLAN, image=PLAN.image.replace("c" * 64, "d" * 64), attempt="9a9a9a9a")
    world.plan = fixed
    world.rollout().run()
    assert world.cloud_run.served() == {fixed.candidate_revision: 100}
    assert world.cloud_run.ready()


def deploy_never_ready(cloud_run: FakeCloudRun, suffix: str, tag: str) -> None:
    """`gcloud run deploy --tag --no-traffic` of an image that never starts: gcloud fails, the tag stays in spec."""
    image = "registry/broken@sha256:" + "e" * 64
    cloud_run.never_ready_images.add(image)
    with pytest.raises(GcloudError, match="is not ready"):
        cloud_run(
            ["gcloud", "run", "deploy", SERVICE, f"--image={image}", f"--revision-suffix={suffix}", f"--tag={tag}"]
        )


def test_a_tag_left_on_an_unready_revision_by_an_earlier_rollout_is_removed_first() -> None:
    world = World()
    deploy_never_ready(world.cloud_run, "old-1", "c-old-1")  # what a rollout that died here left behind
    assert world.cloud_run.spec_tags() == {"c-old-1": f"{SERVICE}-old-1"}
    world.rollout().run()
    assert "left by a failed rollout: ['c-old-1']" in world.text()
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert "c-old-1" not in world.cloud_run.spec_tags()


def test_an_unsettled_service_that_is_not_ours_is_refused_with_the_command_that_settles_it() -> None:
    world = World()
    deploy_never_ready(world.cloud_run, "manual", "mine")
    with pytest.raises(RolloutBlocked) as blocked:
        world.rollout().run()
    assert (
        f"gcloud run services update-traffic {SERVICE} --project=p --region=europe-west1 "
        f"--to-revisions={STABLE}=100 --remove-tags=mine" in str(blocked.value)
    )
    assert not any(call.startswith("run deploy") for call in world.cloud_run.calls[1:])


# -- 3. order of commits -----------------------------------------------------------------------------


def test_a_candidate_built_before_the_serving_revision_is_refused() -> None:
    older = replace(PLAN, source_build_time=STABLE_BUILT - timedelta(minutes=1))
    world = World(plan=older)
    with pytest.raises(RolloutBlocked, match=r"commit 2222222 .* is older than the last release, .*--allow-older"):
        world.rollout().run()
    assert "run deploy" not in " ".join(world.cloud_run.calls)
    assert world.cloud_run.served() == {STABLE: 100}


def test_an_older_commit_ships_when_asked_for_a_roll_back_by_redeploy() -> None:
    world = World(plan=replace(PLAN, source_build_time=STABLE_BUILT - timedelta(days=3), allow_older=True))
    world.rollout().run()
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert "--allow-older" in world.text()


def test_every_revision_records_its_commit_and_when_it_was_built_and_so_does_the_release() -> None:
    world = World()
    world.rollout().run()
    labels = world.cloud_run.revisions[CANDIDATE].labels
    assert labels[COMMIT_LABEL] == PLAN.commit
    assert labels[BUILD_TIME_LABEL] == "20261130084000000000"
    record = json.loads(world.bucket.objects[f"gs://{BUCKET}/{release_name(SERVICE)}"][0])
    assert record == {"revision": CANDIDATE, COMMIT_LABEL: PLAN.commit, BUILD_TIME_LABEL: "20261130084000000000"}


def test_a_release_record_that_cannot_be_read_means_the_order_cannot_be_told() -> None:
    world = World()
    world.bucket.failures["cat@releases/"] = 403
    with pytest.raises(RolloutBlocked, match="cannot read the last release, so cannot order this commit"):
        world.rollout().run()
    assert "run deploy" not in " ".join(world.cloud_run.calls)


def test_without_a_build_time_the_order_cannot_be_told_so_the_rollout_does_not_start() -> None:
    world = World(plan=replace(PLAN, source_build_time=None))
    with pytest.raises(RolloutBlocked, match="cannot tell whether this commit is older"):
        world.rollout().run()


# -- 4. a quiet service ------------------------------------------------------------------------------


def test_a_quiet_service_is_judged_on_the_rollouts_own_synthetic_load() -> None:
    def only_synthetic(revision: str, window: Window) -> RequestStats:
        return stats(window, world.load.sent(revision, window.start, window.end))

    world = World(metrics=only_synthetic)
    world.rollout().run()
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert world.load.started == {
        CANDIDATE: world.cloud_run.url_of(PLAN.candidate_tag),
        STABLE: world.cloud_run.url_of("stable"),
    }
    assert world.load.stopped_at is not None
    assert f"{CANDIDATE}: 540 requests, 0 5xx (0.00%), p99 120 ms (synthetic 540, real 0)" in world.text()


def test_no_requests_at_all_still_fails() -> None:
    world = World(metrics=lambda revision, window: stats(window, 0, p99=None))
    with pytest.raises(RolloutFailed, match="0 requests, fewer than the 30 needed to judge"):
        world.rollout().run()
    assert world.cloud_run.served() == {STABLE: 100}


def test_too_few_requests_waits_longer_then_fails_safe() -> None:
    world = World(metrics=lambda revision, window: stats(window, 5))
    with pytest.raises(RolloutFailed, match="fewer than the 30 needed to judge"):
        world.rollout().run()
    windows = [window for revision, window in world.metrics.queries if revision == CANDIDATE]
    assert [window.seconds for window in windows] == list(range(300, 600 + 1, 60))


# -- 5. gates: a Monitoring error is not a verdict ---------------------------------------------------


@pytest.mark.parametrize(("errors", "ships"), [(4, True), (5, False)])
def test_monitoring_errors_are_retried_and_only_more_than_four_in_a_row_fail(errors: int, ships: bool) -> None:
    failures: list[Window] = []

    def flaky(revision: str, window: Window) -> RequestStats:
        if revision == CANDIDATE and len(failures) < errors:
            failures.append(window)
            raise OSError("monitoring.googleapis.com: 503 Service Unavailable")
        return healthy(revision, window)

    world = World(metrics=flaky)
    if ships:
        world.rollout().run()
        assert world.cloud_run.served() == {CANDIDATE: 100}
        assert "Monitoring error 4 in a row (4 allowed)" in world.text()
    else:
        with pytest.raises(RolloutFailed, match="5 Monitoring errors in a row, the last: OSError"):
            world.rollout().run()
        assert world.cloud_run.served() == {STABLE: 100}


def test_a_missing_latency_series_fails_the_gate() -> None:
    world = World(metrics=lambda revision, window: stats(window, 600, p99=None if revision == CANDIDATE else FAST))
    with pytest.raises(RolloutFailed, match="latency: no latency data for 600 requests"):
        world.rollout().run()


# -- 6. windows ---------------------------------------------------------------------------------------


def test_windows_start_on_the_minute_of_the_shift_and_are_read_once_their_data_is_in() -> None:
    world = World()
    world.rollout().run()
    first_revision, first_window = world.metrics.queries[0]
    assert first_revision == CANDIDATE
    assert first_window.start == START.replace(second=0), "the minute of the shift, so no minute is unseen"
    assert first_window.end == first_window.start + PLAN.dwell
    assert world.clock.sleeps[0] == first_window.end + timedelta(seconds=240)
    assert world.metrics.queries[1] == (STABLE, first_window), "the stable revision over the same window"


def minute_world(errors_in: Callable[[datetime], bool]) -> World:
    """A world whose candidate answers 5xx on 60 of its 120 requests in the minutes `errors_in` picks, and whose
    figures reach Monitoring as Cloud Run's do: a point a minute, visible up to 180 s after the minute."""
    world = World()
    world.metrics = MinuteMetrics(  # type: ignore[assignment]
        world.clock, lambda revision, minute: (120, 60 if revision == CANDIDATE and errors_in(minute) else 0)
    )
    return world


def test_errors_in_the_minutes_right_after_a_shift_are_judged() -> None:
    world = minute_world(lambda minute: minute < START + timedelta(minutes=2))
    with pytest.raises(RolloutFailed, match=r"gate at 10 % failed .*error rate"):
        world.rollout().run()


def test_errors_between_one_window_and_the_next_shift_are_judged() -> None:
    # 09:06 is after the first window (09:00-09:05) and before the second shift: the next window takes it in.
    world = minute_world(lambda minute: minute == START.replace(minute=6, second=0))
    with pytest.raises(RolloutFailed, match=r"gate at 50 % failed .*error rate"):
        world.rollout().run()
    assert [window.start for revision, window in world.metrics.queries if revision == CANDIDATE] == [
        START.replace(second=0),
        START.replace(minute=5, second=0),
    ]


def test_a_minute_without_requests_is_judged_as_none_once_monitoring_has_taken_it_in() -> None:
    stalled: list[datetime] = []

    def per_minute(revision: str, minute: datetime) -> tuple[int, int]:
        # The synthetic load stalled for the candidate's whole second minute: Monitoring has no point for it.
        if revision == CANDIDATE and not stalled:
            stalled.append(minute + timedelta(minutes=1))
        return (0, 0) if revision == CANDIDATE and minute == stalled[0] else (120, 0)

    world = World()
    world.metrics = MinuteMetrics(world.clock, per_minute)  # type: ignore[assignment]
    world.rollout().run()
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert "1 of 5 periods had no requests" in world.text()
    first = world.metrics.queries[0][1]
    assert [window for _, window in world.metrics.queries[:2]] == [first, first], "each window read once per revision"


# -- 7. the freeze fails closed, during a rollout too --------------------------------------------------


@pytest.mark.parametrize("status", [403, 503])
def test_a_freeze_that_cannot_be_read_blocks_the_rollout(status: int) -> None:
    world = World()
    world.bucket.failures["objects describe@freeze/"] = status
    with pytest.raises(RolloutBlocked, match=rf"cannot tell whether rollouts of {SERVICE} are frozen.*{status}"):
        world.rollout().run()
    assert world.cloud_run.calls == []


def test_a_freeze_set_during_the_rollout_sends_traffic_back() -> None:
    world = World()
    at_step(world, 10, lambda: world.freeze("incident 43"))
    with pytest.raises(RolloutFailed, match=r"gate at 50 % failed .*a freeze was set during the rollout: incident 43"):
        world.rollout().run()
    assert world.cloud_run.served() == {STABLE: 100}
    assert world.cloud_run.traffic_writes()[-2:] == [{STABLE: 90, CANDIDATE: 10}, {STABLE: 100}]


def test_a_freeze_that_becomes_unreadable_during_the_rollout_sends_traffic_back() -> None:
    world = World()
    at_step(world, 50, lambda: world.bucket.failures.update({"objects describe@freeze/": 403}))
    with pytest.raises(RolloutFailed, match=r"gate at 100 % failed .*cannot tell whether rollouts are frozen"):
        world.rollout().run()
    assert world.cloud_run.served() == {STABLE: 100}


# -- 8. killed, timed out, cancelled -------------------------------------------------------------------


class Killed(BaseException):
    """SIGKILL: nothing of the rollout runs after it."""


def test_sigterm_during_a_step_sends_traffic_back_and_releases_the_lock() -> None:
    def terminated() -> None:
        raise Terminated("SIGTERM")

    world = World()
    at_step(world, 50, terminated)
    with pytest.raises(Terminated):
        world.rollout().run()
    assert world.cloud_run.served() == {STABLE: 100}
    assert not world.lock_held()
    assert "SIGTERM at the 50 % step: sending traffic back" in world.text()


def kill_at_the_50_percent_step(world: World) -> str:
    """Run a rollout that is killed (SIGKILL: no finally runs) during its 50 % gate; the lock object it left."""
    left: dict[str, dict[str, tuple[str, int]]] = {}

    def killed() -> None:
        left["bucket"] = copy.deepcopy(world.bucket.objects)
        raise Killed

    at_step(world, 50, killed)
    with pytest.raises(Killed):
        world.rollout().run()
    world.bucket.objects = left["bucket"]  # SIGKILL: no finally ran, the lock and its record stay
    world.clock.on_sleep = None
    world.plan = replace(PLAN, commit="3333333ccccccc", attempt="77777777", source_build_time=START)
    world.builds.statuses[world.plan.attempt] = "WORKING"
    return world.bucket.objects[f"gs://{BUCKET}/{lock_name(SERVICE)}"][0]


def test_a_rollout_killed_mid_step_is_finished_by_the_next_one_once_its_lock_expires() -> None:
    world = World()
    held = kill_at_the_50_percent_step(world)
    assert f'"expires": "{(START + PLAN.deadline).isoformat()}"' in held, "it outlives its holder's deadline only"
    assert world.cloud_run.served() == {STABLE: 50, CANDIDATE: 50}

    world.clock.current = START + PLAN.deadline + timedelta(minutes=1)
    world.rollout().run()
    assert f"its rollout of {CANDIDATE} was abandoned (gating at 50 %)" in world.text()
    assert f"sent 100 % back to {STABLE}" in world.text()
    assert world.cloud_run.served() == {world.plan.candidate_revision: 100}
    assert PLAN.candidate_tag not in world.cloud_run.spec_tags()


@pytest.mark.parametrize("status", ["FAILURE", "TIMEOUT", "CANCELLED", "INTERNAL_ERROR"])
def test_a_lock_whose_build_has_ended_is_taken_over_at_once_and_its_rollout_finished(status: str) -> None:
    world = World()
    held = kill_at_the_50_percent_step(world)
    assert f'"build": "{PLAN.attempt}"' in held
    world.builds.statuses[PLAN.attempt] = status  # Cloud Build's record once the killed step's build is over

    world.rollout().run()
    assert world.clock.now() < START + PLAN.deadline, "taken over long before the lock expires"
    assert f"its build {PLAN.attempt} has ended ({status})" in world.text()
    assert f"its rollout of {CANDIDATE} was abandoned (gating at 50 %)" in world.text()
    assert f"sent 100 % back to {STABLE}" in world.text()
    assert world.cloud_run.served() == {world.plan.candidate_revision: 100}
    assert not world.lock_held()


@pytest.mark.parametrize(
    ("status", "denied", "said"),
    [
        ("WORKING", False, f"its build {PLAN.attempt} is still running"),
        ("QUEUED", False, f"its build {PLAN.attempt} is still running"),
        (None, False, "NOT_FOUND: Requested entity was not found"),
        ("FAILURE", True, "PERMISSION_DENIED"),
    ],
)
def test_a_lock_whose_build_may_still_run_blocks_the_next_rollout(status: str | None, denied: bool, said: str) -> None:
    world = World()
    held = kill_at_the_50_percent_step(world)
    if status is None:
        del world.builds.statuses[PLAN.attempt]
    else:
        world.builds.statuses[PLAN.attempt] = status
    world.builds.denied = denied

    with pytest.raises(RolloutBlocked, match=f"locked by 2222222 attempt {PLAN.attempt} until .*{said}"):
        world.rollout().run()
    assert world.bucket.objects[f"gs://{BUCKET}/{lock_name(SERVICE)}"][0] == held
    assert world.cloud_run.served() == {STABLE: 50, CANDIDATE: 50}, "nothing moved"


@dataclass
class SigtermAt:
    """The bucket, with SIGTERM landing at the `at`-th gcloud call on the lock object: before the call ran, or
    after it ran and before its answer was read (gcloud's child process finishes the call on its own)."""

    bucket: FakeBucket
    at: int
    after: bool
    calls: int = 0

    def __call__(self, command: Sequence[str], stdin: str | None = None) -> str:
        if not any(lock_name(SERVICE) in word for word in command):
            return self.bucket(command, stdin)
        self.calls += 1
        if self.calls == self.at and not self.after:
            raise Terminated("SIGTERM")
        answer = self.bucket(command, stdin)
        if self.calls == self.at:
            raise Terminated("SIGTERM")
        return answer


def test_sigterm_at_any_point_of_any_lock_write_or_release_leaves_the_lock_released() -> None:
    counting = World()
    counting.storage = counter = SigtermAt(counting.bucket, at=0, after=False)
    counting.rollout().run()
    assert counter.calls >= 8, "take, record each phase and step, release"

    for at in range(1, counter.calls + 1):
        for after in (False, True):
            world = World()
            world.storage = SigtermAt(world.bucket, at, after)
            with pytest.raises(Terminated):
                world.rollout().run()
            where = f"SIGTERM at lock call {at} ({'after' if after else 'before'} it ran)"
            assert not world.lock_held(), f"{where}: lock left held\n{world.text()}"
            assert len(world.cloud_run.served()) == 1, f"{where}: traffic left split {world.cloud_run.served()}"
            assert "LOCK NOT RELEASED" not in world.text(), where


@pytest.mark.parametrize("after", [False, True], ids=["before-the-write", "after-the-write"])
def test_sigterm_during_the_rollback_of_a_failed_gate_still_sends_traffic_back(after: bool) -> None:
    world = World(metrics=lambda revision, window: stats(window, 600, errors=60 if revision == CANDIDATE else 0))
    landed: list[bool] = []

    def sigterm() -> None:
        # Before the rollback's PUT the service still asks for the 10 % split; after it, for stable, tagged failed-.
        rollback = {STABLE: 100} if after else {STABLE: 90, CANDIDATE: 10}
        applied = PLAN.failed_tag in world.cloud_run.spec_tags() or not after
        if world.cloud_run.asked() == rollback and applied and not landed:
            landed.append(True)
            raise Terminated("SIGTERM")

    def after_the_put(command: str) -> str | None:
        sigterm()
        return None

    if after:
        world.cloud_run.fail_after_put = after_the_put
    else:
        world.cloud_run.before_put = lambda fake, command: sigterm()
    with pytest.raises(Terminated):
        world.rollout().run()
    assert landed
    assert f"SIGTERM while sending traffic back to {STABLE}: doing it again, to its end" in world.text()
    assert world.cloud_run.served() == {STABLE: 100}
    assert not world.lock_held()


def test_the_rollout_sends_traffic_back_before_its_deadline() -> None:
    world = World()

    world.smoke_takes = timedelta(minutes=60)  # slower than anything planned for: the deadline still holds
    with pytest.raises(RolloutFailed, match=r"OutOfTime: too close to the deadline for the 100 % step"):
        world.rollout().run()
    assert world.cloud_run.served() == {STABLE: 100}
    assert world.clock.now() < START + PLAN.deadline
    assert not world.lock_held()


# -- 9. the lock's own failures --------------------------------------------------------------------------


def test_a_release_that_fails_is_reported_with_the_command_that_frees_the_lock() -> None:
    world = World()
    world.bucket.failures["rm"] = 503
    world.rollout().run()
    assert "lock released" not in world.text()
    assert f"LOCK NOT RELEASED: could not delete gs://{BUCKET}/{lock_name(SERVICE)}" in world.text()
    assert f"gcloud storage rm gs://{BUCKET}/{lock_name(SERVICE)} --if-generation-match=" in world.text()


def test_a_lock_written_but_not_confirmed_is_recognised_as_this_builds_own() -> None:
    world = World()
    world.bucket.failures["objects describe@locks/"] = 503
    world.bucket.times["objects describe@locks/"] = 1  # the describe right after the write fails once
    world.rollout().run()
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert not world.lock_held()


# -- 10. the rollback target is protected ---------------------------------------------------------------


def test_the_stable_revision_keeps_a_tag_while_the_candidate_holds_all_traffic() -> None:
    world = World()
    seen: dict[str, dict[str, str]] = {}
    at_step(world, 100, lambda: seen.update(spec=world.cloud_run.spec_tags(), status=world.cloud_run.served_tags()))
    world.rollout().run()
    assert seen["spec"]["stable"] == STABLE
    assert seen["status"]["stable"] == STABLE, "applied, so Cloud Run will not delete it"
    assert world.cloud_run.spec_tags()["stable"] == CANDIDATE, "the tag moves on promotion"


# -- 11. the build's result matches production -----------------------------------------------------------


def test_an_operator_rollback_during_the_final_gate_is_not_reported_as_done() -> None:
    world = World()
    at_step(world, 100, lambda: world.cloud_run.operator(f"--to-revisions={STABLE}=100"))
    with pytest.raises(OperatorIntervened, match=f"after the last gate traffic is {STABLE}=100"):
        world.rollout().run()
    assert "done:" not in world.text()
    assert world.cloud_run.served() == {STABLE: 100}


def test_a_tag_that_cannot_be_tidied_after_promotion_is_a_warning() -> None:
    world = World()
    world.cloud_run.before_put = refuse_when({CANDIDATE: 100}, tagged=PLAN.candidate_tag)
    world.rollout().run()
    assert f"WARNING: {CANDIDATE} serves 100 %, but its tags were not tidied" in world.text()
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert not world.lock_held()


# -- 12. compare-and-swap ------------------------------------------------------------------------------------


def operator_moves(operator_sets: dict[str, int]) -> Callable[[FakeCloudRun], None]:
    return lambda fake: fake.operator(
        "--to-revisions=" + ",".join(f"{name}={share}" for name, share in operator_sets.items())
    )


def between_read_and_write(world: World, asked: dict[str, int], action: Callable[[FakeCloudRun], None]) -> None:
    """Run `action` once, after the rollout has read the service for a traffic write and before its PUT arrives,
    while the service asks for `asked`."""

    def once(fake: FakeCloudRun, call: str) -> None:
        if call == "replaceService" and fake.asked() == asked:
            fake.before_put = None
            action(fake)

    world.cloud_run.before_put = once


@pytest.mark.parametrize("operator_sets", [{STABLE: 100}, {CANDIDATE: 100}], ids=["rolls-back", "promotes"])
def test_an_operators_change_between_the_rollouts_read_and_write_is_not_overwritten(
    operator_sets: dict[str, int],
) -> None:
    world = World()
    between_read_and_write(world, {STABLE: 90, CANDIDATE: 10}, operator_moves(operator_sets))
    with pytest.raises(OperatorIntervened) as stopped:
        world.rollout().run()
    # The rollout's 50 % carried the resourceVersion it read: Cloud Run refused it, and nothing was written after.
    assert world.cloud_run.traffic_writes()[-2:] == [{STABLE: 90, CANDIDATE: 10}, operator_sets]
    assert world.cloud_run.served() == operator_sets
    assert "someone else changed it, and their change stands" in str(stopped.value)
    assert "the rollout stops here and leaves traffic as it is" in str(stopped.value)
    assert not world.lock_held()


def test_an_operators_change_right_after_the_rollouts_write_stands() -> None:
    world = World()
    world.cloud_run.stale_reads = 1  # the rollout's write is not applied yet when the operator's lands

    def operator_after_our_put(command: str) -> None:
        if command == "replaceService" and world.cloud_run.asked() == {STABLE: 50, CANDIDATE: 50}:
            world.cloud_run.fail_after_put = lambda command: None
            world.cloud_run.operator(f"--to-revisions={STABLE}=100")

    world.cloud_run.fail_after_put = operator_after_our_put
    with pytest.raises(OperatorIntervened, match="right after this rollout's write: someone else changed it"):
        world.rollout().run()
    assert world.cloud_run.served() == {STABLE: 100}
    assert world.cloud_run.traffic_writes()[-1] == {STABLE: 100}


def test_a_write_whose_answer_was_lost_is_judged_by_the_service_after_it() -> None:
    world = World()
    world.cloud_run.fail_after_put = lambda call: "timed out" if call == "replaceService" else None
    world.rollout().run()
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert "the traffic write reported a failure, but the change is in place: no answer: timed out" in world.text()


def test_each_traffic_write_is_waited_for_until_cloud_run_has_applied_it() -> None:
    world = World()
    world.cloud_run.stale_reads = 3
    world.rollout().run()
    assert world.cloud_run.served() == {CANDIDATE: 100}
    assert world.cloud_run.traffic_writes() == [
        {STABLE: 100},
        {STABLE: 90, CANDIDATE: 10},
        {STABLE: 50, CANDIDATE: 50},
        {CANDIDATE: 100},
    ]
    calls = world.cloud_run.calls
    writes = [index for index, call in enumerate(calls) if call.startswith("namespaces.services.replaceService")]
    assert len(writes) == 5, "the stable tag, three steps, the tags after promotion"
    for index in writes:
        assert calls[index + 1 : index + 5] == [f"namespaces.services.get {SERVICE}"] * 4, "read until status is in"
