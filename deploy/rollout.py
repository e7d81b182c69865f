"""The gated rollout of one candidate revision.

Lock, record the stable revision, deploy the candidate with no traffic under its own tag, smoke-test
its tag URL, then move traffic in steps, judging the candidate from Cloud Monitoring after each one.
Any failure after the first shift sends all traffic back to the stable revision. Before every traffic
change the service is read again, and if its split is not the one this rollout last set, an operator
has stepped in: the rollout stops and leaves traffic alone.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from deploy.cloud_run import Candidate, CloudRun, CloudRunError, Split, split_flag
from deploy.gates import Thresholds, judge
from deploy.lock import ObjectStore, RolloutBlocked, RolloutLock, check_not_frozen
from deploy.metrics import Metrics, RequestStats, Window
from deploy.revision import RevisionTemplate
from deploy.smoke import SmokeReport


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep_until(self, moment: datetime) -> None: ...


class RolloutFailed(Exception):
    """The candidate was refused. User traffic, if any moved, is back on the stable revision."""


class OperatorIntervened(Exception):
    """Someone changed traffic during the rollout; it stopped without touching traffic again."""


@dataclass(frozen=True)
class RolloutPlan:
    service: str
    image: str
    commit: str
    attempt: str
    service_account: str
    template: RevisionTemplate
    bootstrap_revision: str
    steps: Sequence[int] = (10, 50, 100)
    dwell: timedelta = timedelta(minutes=5)
    metrics_lag: timedelta = timedelta(minutes=2)
    max_extra_wait: timedelta = timedelta(minutes=10)
    poll: timedelta = timedelta(minutes=1)
    thresholds: Thresholds = field(default_factory=Thresholds)
    lock_ttl: timedelta = timedelta(hours=2)

    def __post_init__(self) -> None:
        if not self.steps or list(self.steps) != sorted(set(self.steps)) or self.steps[-1] != 100:
            raise ValueError(f"traffic steps must rise strictly and end at 100, got {list(self.steps)}")
        if not all(0 < step <= 100 for step in self.steps):
            raise ValueError(f"traffic steps must be percentages between 1 and 100, got {list(self.steps)}")

    @property
    def suffix(self) -> str:
        """Unique per attempt, so re-running a commit never collides with the revision it made before."""
        return f"{self.commit[:7]}-{self.attempt[:6]}".lower()

    @property
    def candidate_revision(self) -> str:
        return f"{self.service}-{self.suffix}"

    @property
    def candidate_tag(self) -> str:
        return f"c-{self.suffix}"

    @property
    def failed_tag(self) -> str:
        return f"failed-{self.suffix}"


def step_split(candidate: str, stable: str, percent: int) -> dict[str, int]:
    """The traffic split of one canary step: the candidate's share, the rest on the stable revision."""
    return {candidate: 100} if percent == 100 else {candidate: percent, stable: 100 - percent}


def split_text(split: Split) -> str:
    return split_flag(split).replace(",", ", ") or "no traffic"


@dataclass
class Rollout:
    plan: RolloutPlan
    cloud_run: CloudRun
    metrics: Metrics
    objects: ObjectStore
    smoke: Callable[[str], SmokeReport]
    clock: Clock
    log: Callable[[str], None] = print
    _expected: dict[str, int] = field(default_factory=dict, init=False)
    _attempted: dict[str, int] = field(default_factory=dict, init=False)

    def run(self) -> None:
        plan = self.plan
        check_not_frozen(self.objects, plan.service)
        lock = RolloutLock(self.objects, plan.service, f"{plan.commit[:7]} attempt {plan.attempt}", plan.lock_ttl)
        lock.acquire(self.clock.now())
        self.log(f"lock taken for {plan.service}")
        try:
            self._roll_out()
        finally:
            lock.release()
            self.log(f"lock released for {plan.service}")

    def _roll_out(self) -> None:
        plan = self.plan
        self._expected = self.cloud_run.describe().split()
        stable = self._stable_revision(self._expected)
        self.log(f"serving now: {split_text(self._expected)}; stable revision: {stable or 'none (first deploy)'}")

        candidate = plan.candidate_revision
        self.log(f"deploying {candidate} from {plan.image} with no traffic, tag {plan.candidate_tag}")
        try:
            self.cloud_run.deploy_without_traffic(
                Candidate(plan.suffix, plan.image, plan.candidate_tag, plan.service_account, plan.template)
            )
        except CloudRunError as error:
            self._mark_failed(candidate)
            raise RolloutFailed(f"deploy of {candidate} failed, no traffic moved: {error}") from error

        url = self.cloud_run.describe().tag_url(plan.candidate_tag)
        if url is None:
            self._mark_failed(candidate)
            raise RolloutFailed(f"{candidate} has no URL for tag {plan.candidate_tag}; no traffic moved")
        report = self.smoke(url)
        self.log(report.summary())
        if not report.ok:
            self._mark_failed(candidate)
            raise RolloutFailed(f"smoke test of {candidate} at {url} failed, no traffic moved: {report.failures}")

        if stable is None:
            self.log("first deploy: no stable revision to compare with, so the smoke test is the only gate")
            try:
                self._shift({candidate: 100})
            except CloudRunError as error:
                self._mark_failed(candidate)
                raise RolloutFailed(f"could not send traffic to {candidate}: {error}") from error
        else:
            self._canary(candidate, stable)
        self.cloud_run.retag(add={}, remove=[plan.candidate_tag])
        self.log(f"done: {candidate} serves 100 %")

    def _stable_revision(self, split: Split) -> str | None:
        if len(split) > 1:
            raise RolloutBlocked(
                f"traffic is split ({split_text(split)}): a rollout may be under way or an operator is testing; "
                "send 100 % to one revision first"
            )
        serving = next(iter(split), None)
        return None if serving in (None, self.plan.bootstrap_revision) else serving

    def _canary(self, candidate: str, stable: str) -> None:
        for percent in self.plan.steps:
            try:
                self._shift(step_split(candidate, stable, percent))
                failures, stats = self._gate(candidate, stable, self.clock.now())
                figures = f"candidate {stats[0]}; stable {stats[1] or 'no data'}"
            except OperatorIntervened:
                raise
            except Exception as error:  # noqa: BLE001 (whatever stops the judgement fails the candidate, never passes it)
                failures, figures = [f"could not shift or judge: {type(error).__name__}: {error}"], "no figures"
            if failures:
                self._roll_back(candidate, stable)
                raise RolloutFailed(
                    f"gate at {percent} % failed for {candidate}: {'; '.join(failures)} [{figures}]; "
                    f"100 % is back on {stable}"
                )
            self.log(f"gate at {percent} % passed: {figures}")

    def _shift(self, split: dict[str, int]) -> None:
        current = self.cloud_run.describe().split()
        # A shift whose call failed may still have been applied: that split is this rollout's too.
        if current not in (self._expected, self._attempted):
            raise OperatorIntervened(
                f"traffic is {split_text(current)}, not the {split_text(self._expected)} this rollout set: "
                "someone else changed it, so the rollout stops here and leaves traffic as it is"
            )
        self.log(f"traffic: {split_text(current)} -> {split_text(split)}")
        self._attempted = dict(split)
        self.cloud_run.set_traffic(split)
        self._expected = dict(split)

    def _gate(
        self, candidate: str, stable: str, shifted_at: datetime
    ) -> tuple[list[str], tuple[RequestStats, RequestStats | None]]:
        plan = self.plan
        # Requests before the shift, and the minute Cloud Run takes to apply it, stay out of the window;
        # each window is read only once the metrics' reporting lag has passed its end.
        start = shifted_at + plan.metrics_lag
        end = start + plan.dwell
        last_end = end + plan.max_extra_wait
        while True:
            self.clock.sleep_until(end + plan.metrics_lag)
            window = Window(start, end)
            stats = self.metrics.request_stats(candidate, window)
            self.log(f"window {window}: candidate {candidate}: {stats}")
            if stats.total >= plan.thresholds.min_requests or end >= last_end:
                break
            end = min(end + plan.poll, last_end)
        baseline = self.metrics.request_stats(stable, window) if stable in self._expected else None
        return judge(stats, baseline, plan.thresholds), (stats, baseline)

    def _roll_back(self, candidate: str, stable: str) -> None:
        try:
            self._shift({stable: 100})
        except CloudRunError as error:
            current = split_text(self._expected)
            raise RolloutFailed(
                f"ROLLBACK FAILED, traffic may still be {current}: send it back by hand with "
                f"gcloud run services update-traffic --to-revisions={stable}=100 ({error})"
            ) from error
        self._mark_failed(candidate)

    def _mark_failed(self, candidate: str) -> None:
        try:
            self.cloud_run.retag(add={self.plan.failed_tag: candidate}, remove=[self.plan.candidate_tag])
        except CloudRunError as error:
            self.log(f"could not tag {candidate} as failed: {error}")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, moment: datetime) -> None:
        time.sleep(max(0.0, (moment - self.now()).total_seconds()))
