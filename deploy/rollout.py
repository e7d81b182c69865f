"""The gated rollout of one candidate revision (docs/rollout-sequence.svg draws it).

1. Refuse while a freeze exists or storage cannot say; take the lock; finish a rollout whose build has ended
   or whose deadline has passed.
2. Read the service: repair what an earlier failed rollout left in spec.traffic, or refuse with the command
   that settles it; refuse a split; refuse a candidate older than the serving revision; tag the stable one.
3. Deploy the candidate with no traffic under its own tag, and smoke-test its tag URL.
4. Move traffic in steps while synthetic load runs on both tag URLs; before each step read the freeze and
   the clock, after it judge the candidate from Cloud Monitoring over whole-minute windows.
5. Require the candidate at 100 % after the last gate, move the stable tag to it, release the lock.

Any failure after the first shift sends all traffic back to the stable revision, and so do a freeze, the
deadline and SIGTERM. Every write is made on the object just read, only if its split is the one this rollout
last set, and Cloud Run refuses it if anyone wrote since that read: otherwise an operator has stepped in, and the
rollout stops and leaves traffic alone.
"""

import json
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from deploy.builds import BuildRecords
from deploy.cloud_run import (
    Candidate,
    CloudRunError,
    Service,
    Split,
    Tags,
    TrafficConflict,
    Written,
    describe_split,
)
from deploy.gates import Thresholds, judge
from deploy.load import Load
from deploy.lock import (
    ObjectStore,
    RolloutBlocked,
    RolloutLock,
    StorageError,
    check_not_frozen,
    freeze_reason,
    release_name,
)
from deploy.metrics import Metrics, RequestStats, Window, align_down
from deploy.revision import RevisionTemplate
from deploy.smoke import SmokeReport

STABLE_TAG = "stable"
"""Always on the revision the rollout would go back to, so nothing can delete it while it has no traffic."""
CANDIDATE_PREFIX, FAILED_PREFIX = "c-", "failed-"
COMMIT_LABEL = "commit-sha"
BUILD_TIME_LABEL = "source-build-time"
"""When Cloud Build created the build that made the image, as YYYYMMDDhhmmssffffff (UTC): the order of commits.
Both labels are on every revision the rollout deploys, and in the release record of the last one it promoted."""


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep_until(self, moment: datetime) -> None: ...


class CloudRun(Protocol):
    def describe(self) -> Service: ...

    def deploy(self, candidate: Candidate) -> None: ...

    def write_traffic(self, read: Service, split: Split, tags: Tags) -> Written: ...

    def manual_traffic_command(self, split: Split, remove_tags: Sequence[str] = ()) -> list[str]:
        """What an operator would run to set this split by hand (never run by the rollout)."""


class RolloutFailed(Exception):
    """The candidate was refused. User traffic, if any moved, is back on the stable revision."""


class OperatorIntervened(Exception):
    """Someone changed traffic during the rollout; it stopped without touching traffic again."""


class Terminated(BaseException):
    """SIGTERM: the build was cancelled or timed out. A BaseException, so no `except Exception` swallows it."""


class OutOfTime(Exception):
    """Going on would leave too little time before the deadline to send traffic back and release the lock."""


def build_time_label(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")


@dataclass(frozen=True)
class RolloutPlan:
    service: str
    image: str
    commit: str
    attempt: str
    service_account: str
    template: RevisionTemplate
    bootstrap_revision: str
    source_build_time: datetime | None = None
    """When Cloud Build created the build of this commit; a candidate built before the serving one is older."""
    allow_older: bool = False
    """Deploy even a commit older than the serving one: a deliberate roll-back by redeploy."""
    steps: Sequence[int] = (10, 50, 100)
    dwell: timedelta = timedelta(minutes=5)
    """Length of each gate's window, which starts at the whole metrics period that holds the shift."""
    metrics_lag: timedelta = timedelta(minutes=4)
    """How long after a window ends it is read: Cloud Run samples every 60 s and shows a sample within 180 s."""
    max_extra_wait: timedelta = timedelta(minutes=5)
    """How far a window may grow, a poll at a time, until the candidate has min_requests."""
    poll: timedelta = timedelta(minutes=1)
    metrics_period: timedelta = timedelta(minutes=1)
    """Cloud Run's sampling period: windows are whole periods, and Monitoring aligns to it."""
    consecutive_error_limit: int = 4
    """Monitoring errors in a row a gate tolerates, each retried a poll later; one more fails it. Argo Rollouts'
    consecutiveErrorLimit and its default: "the number of times a metric can error in sequence"."""
    synthetic_rps: float = 2.0
    """Requests per second the rollout sends to each of the candidate's and the stable revision's tag URLs."""
    deadline: timedelta = timedelta(minutes=100)
    """From the start of `python -m deploy` to the end of its last action, rollback and lock release included."""
    call_limit: timedelta = timedelta(seconds=90)
    """Longest a gcloud call or a read of the service may take, and a traffic write with the wait for it to apply."""
    deploy_limit: timedelta = timedelta(minutes=10)
    """Longest `gcloud run deploy` may take: it waits for the revision to pass its startup probe."""
    smoke_limit: timedelta = timedelta(minutes=3)
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        steps = list(self.steps)
        if not steps or steps != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError(f"traffic steps must rise strictly and end at 100, got {steps}")
        if not all(0 < step <= 100 for step in steps):
            raise ValueError(f"traffic steps must be percentages between 1 and 100, got {steps}")
        if self.dwell <= timedelta(0) or self.dwell % self.metrics_period:
            raise ValueError(
                f"the dwell ({self.dwell}) must be a whole number of metrics periods ({self.metrics_period})"
            )
        if self.poll <= timedelta(0) or self.consecutive_error_limit < 1 or self.synthetic_rps < 0:
            raise ValueError("poll must be positive, the error limit at least 1 and the synthetic rate not negative")
        if self.worst_case() > self.deadline:
            raise ValueError(f"these settings can take up to {self.worst_case()}, beyond the {self.deadline} deadline")

    @property
    def suffix(self) -> str:
        """Unique per attempt, so re-running a commit never collides with the revision it made before."""
        return f"{self.commit[:7]}-{self.attempt[:6]}".lower()

    @property
    def candidate_revision(self) -> str:
        return f"{self.service}-{self.suffix}"

    @property
    def candidate_tag(self) -> str:
        return f"{CANDIDATE_PREFIX}{self.suffix}"

    @property
    def failed_tag(self) -> str:
        return f"{FAILED_PREFIX}{self.suffix}"

    @property
    def labels(self) -> dict[str, str]:
        labels = {COMMIT_LABEL: self.commit.lower()}
        if self.source_build_time is not None:
            labels[BUILD_TIME_LABEL] = build_time_label(self.source_build_time)
        return labels

    @property
    def gate_limit(self) -> timedelta:
        """The longest a gate may take from its shift: a partial first period, the window at its longest, the
        wait for its data, and a poll for each Monitoring error tolerated in a row. Past it the gate fails."""
        return (
            self.metrics_period
            + self.dwell
            + self.max_extra_wait
            + self.metrics_lag
            + self.poll * self.consecutive_error_limit
        )

    @property
    def reserve(self) -> timedelta:
        """Kept free before the deadline: a read and a write to send traffic back, and the lock's release."""
        return self.call_limit * 3

    def worst_case(self) -> timedelta:
        """The longest a rollout can run with every wait at its maximum and every call at its limit."""
        # Freeze, lock, service, serving revision's labels, stable tag; each step: freeze, read, write; then
        # the final read and the tag move.
        setup = self.call_limit * 5 + self.deploy_limit + self.call_limit + self.smoke_limit
        step = self.call_limit * 3 + self.gate_limit
        return setup + step * len(self.steps) + self.call_limit * 2 + self.reserve


def ours(tag: str) -> bool:
    return tag == STABLE_TAG or tag.startswith((CANDIDATE_PREFIX, FAILED_PREFIX))


@dataclass
class Rollout:
    plan: RolloutPlan
    cloud_run: CloudRun
    metrics: Metrics
    objects: ObjectStore
    smoke: Callable[[str], SmokeReport]
    load: Load
    clock: Clock
    log: Callable[[str], None] = print
    builds: BuildRecords | None = None
    """Cloud Build's records: a lock whose holder's build has ended is taken over at once (plan.attempt is this
    rollout's own build)."""
    _expected: dict[str, int] = field(default_factory=dict, init=False)
    _attempted: dict[str, int] = field(default_factory=dict, init=False)
    _guard: datetime = field(default=datetime.max.replace(tzinfo=UTC), init=False)
    _covered_until: datetime | None = field(default=None, init=False)
    _lock: RolloutLock | None = field(default=None, init=False)

    def run(self) -> None:
        plan, started = self.plan, self.clock.now()
        deadline = started + plan.deadline
        self._guard = deadline - plan.reserve
        self.log(f"rollout of {plan.candidate_revision} must end by {deadline:%H:%M:%S}Z")
        check_not_frozen(self.objects, plan.service)
        # A live holder ends before its deadline; this lock outlives that only if its holder died.
        holder = f"{plan.commit[:7]} attempt {plan.attempt}"
        self._lock = lock = RolloutLock(self.objects, plan.service, holder, deadline, plan.attempt, self.builds)
        try:
            abandoned = lock.acquire(started)
            self.log(f"lock taken for {plan.service}")
            if abandoned:
                self._finish_abandoned(abandoned)
            self._roll_out()
        finally:
            self.load.stop()
            self._release_lock(lock)

    def _release_lock(self, lock: RolloutLock) -> None:
        self._to_the_end("releasing the lock", lambda: self.log(lock.release()))

    def _to_the_end(self, what: str, action: Callable[[], None]) -> None:
        """Run `action`; if SIGTERM cuts it short (perhaps after its effect), run it once more, then let the signal
        go on. The handler raises only once, so the second run is not cut short; each action here is one a
        second run completes safely (a release finds its lock by holder, a write recognises its own split)."""
        try:
            action()
        except Terminated:
            self.log(f"SIGTERM while {what}: doing it again, to its end")
            action()
            raise

    # -- before any traffic moves ------------------------------------------------------------------

    def _roll_out(self) -> None:
        plan = self.plan
        service = self._settle(self.cloud_run.describe())
        self._expected = service.desired_split()
        stable = self._stable_revision(service.split())
        self.log(f"serving now: {describe_split(service.split())}; stable revision: {stable or 'none (first deploy)'}")
        self._check_order()
        if stable is not None and service.tags().get(STABLE_TAG) != stable:
            self._write(self._expected, {STABLE_TAG: stable})
            self.log(f"tagged {stable} {STABLE_TAG!r}: it cannot be deleted while the rollout may need it")

        candidate = plan.candidate_revision
        self._record(phase="deploying", candidate=candidate, candidate_tag=plan.candidate_tag, stable=stable)
        self.log(f"deploying {candidate} from {plan.image} with no traffic, tag {plan.candidate_tag}")
        try:
            self.cloud_run.deploy(
                Candidate(plan.suffix, plan.image, plan.candidate_tag, plan.service_account, plan.template, plan.labels)
            )
        except CloudRunError as error:
            self._drop_candidate(candidate)
            raise RolloutFailed(f"deploy of {candidate} failed, no traffic moved: {error}") from error
        except Terminated:
            self._drop_candidate(candidate)
            raise
        try:
            service = self.cloud_run.describe()
            url = self._smoke(candidate, service)
        except (RolloutFailed, Terminated):
            self._drop_candidate(candidate)
            raise

        if stable is None:
            self.log("first deploy: no stable revision to compare with, so the smoke test is the only gate")
            self._first_deploy(candidate)
        else:
            stable_url = service.tag_url(STABLE_TAG)
            self.load.start({candidate: url, **({stable: stable_url} if stable_url else {})})
            self._canary(candidate, stable)
            self.load.stop()
        self._promote(candidate, stable)

    def _settle(self, service: Service) -> Service:
        """Repair tags an earlier failed rollout left unapplied in spec.traffic; refuse any other mismatch."""
        if service.settled():
            return service
        served_tags = service.served_tags()
        unapplied = {tag: revision for tag, revision in service.tags().items() if served_tags.get(tag) != revision}
        if (
            service.desired_split() == service.split()
            and all(ours(tag) for tag in unapplied)
            and all(service.tags().get(tag) == revision for tag, revision in served_tags.items())
        ):
            self.log(f"spec.traffic holds tags Cloud Run never applied, left by a failed rollout: {sorted(unapplied)}")
            kept = {tag: revision for tag, revision in service.tags().items() if tag not in unapplied}
            written = self._write_on(service, service.desired_split(), kept)
            self.log(f"removed them; spec.traffic and status.traffic agree again: {describe_split(written.split())}")
            return written
        removals = sorted(set(service.tags()) - set(served_tags))
        command = shlex.join(self.cloud_run.manual_traffic_command(service.split(), removals))
        raise RolloutBlocked(
            f"spec.traffic asks for {describe_split(service.desired_split())} with tags {service.tags()}, but "
            f"Cloud Run serves {describe_split(service.split())} with tags {served_tags}: a change is under way "
            f"or cannot be applied. Settle it first, for example with: {command}"
        )

    def _stable_revision(self, split: Split) -> str | None:
        if len(split) > 1:
            raise RolloutBlocked(
                f"traffic is split ({describe_split(split)}): a rollout may be under way or an operator is testing; "
                "send 100 % to one revision first"
            )
        serving = next(iter(split), None)
        return None if serving in (None, self.plan.bootstrap_revision) else serving

    def _check_order(self) -> None:
        """Refuse a candidate built before the last one this pipeline promoted, unless --allow-older asks for it."""
        plan = self.plan
        try:
            held = self.objects.read(release_name(plan.service))
        except StorageError as error:
            raise RolloutBlocked(f"cannot read the last release, so cannot order this commit: {error}") from None
        if held is None:
            self.log("no release recorded yet: nothing to order this commit against")
            return
        last = json.loads(held[0])
        released = f"{last['revision']} (commit {last[COMMIT_LABEL][:7]}, built {last.get(BUILD_TIME_LABEL)})"
        if last[COMMIT_LABEL] == plan.commit.lower():
            self.log(f"the last release, {released}, is this same commit: a re-run")
            return
        if plan.allow_older:
            self.log(f"--allow-older: not comparing with the last release, {released}")
            return
        if plan.source_build_time is None:
            raise RolloutBlocked(
                "no --source-build-time: cannot tell whether this commit is older than the last release; "
                "pass it, or --allow-older for a deliberate roll-back"
            )
        if last.get(BUILD_TIME_LABEL) and build_time_label(plan.source_build_time) < last[BUILD_TIME_LABEL]:
            raise RolloutBlocked(
                f"commit {plan.commit[:7]} (built {build_time_label(plan.source_build_time)}) is older than the last "
                f"release, {released}; to roll back to it on purpose, run the rollout with --allow-older"
            )

    def _record_release(self, candidate: str) -> None:
        """What the next rollout orders its commit against; a failure to record it is a warning."""
        name = release_name(self.plan.service)
        labels = self.plan.labels
        content = json.dumps({"revision": candidate, **labels})
        try:
            held = self.objects.read(name)
            written = self.objects.create_if_absent(name, content) if held is None else None
            if held is not None:
                written = self.objects.overwrite(name, content, held[1])
        except StorageError as error:
            self.log(f"WARNING: the release of {candidate} was not recorded in {name}: {error}")
            return
        if written is None:
            self.log(f"WARNING: {name} changed while the release of {candidate} was recorded: not recorded")

    def _smoke(self, candidate: str, service: Service) -> str:
        url = service.tag_url(self.plan.candidate_tag)
        if url is None:
            raise RolloutFailed(f"{candidate} has no URL for tag {self.plan.candidate_tag}; no traffic moved")
        report = self.smoke(url)
        self.log(report.summary())
        if not report.ok:
            raise RolloutFailed(f"smoke test of {candidate} at {url} failed, no traffic moved: {report.failures}")
        return url

    # -- traffic ---------------------------------------------------------------------------------

    def _first_deploy(self, candidate: str) -> None:
        try:
            self._check_freeze()
            self._shift({candidate: 100}, {})
        except (RolloutBlocked, CloudRunError) as error:
            self._drop_candidate(candidate)
            raise RolloutFailed(f"could not send traffic to {candidate}: {error}") from error

    def _canary(self, candidate: str, stable: str) -> None:
        for percent in self.plan.steps:
            try:
                self._check_freeze()
                self._check_time(percent)
                shifted_at = self._shift(
                    {candidate: 100} if percent == 100 else {candidate: percent, stable: 100 - percent},
                    {STABLE_TAG: stable},
                )
                self._record(phase="gating", percent=percent)
                failures, figures = self._gate(candidate, stable, shifted_at, compare=percent < 100)
            except OperatorIntervened:
                raise
            except Terminated:
                self.log(f"SIGTERM at the {percent} % step: sending traffic back to {stable}")
                self._roll_back(candidate, stable)
                raise
            except Exception as error:  # noqa: BLE001 (whatever stops the judgement fails the candidate, never passes it)
                failures, figures = [f"{type(error).__name__}: {error}"], "no figures"
            if failures:
                self._roll_back(candidate, stable)
                raise RolloutFailed(
                    f"gate at {percent} % failed for {candidate}: {'; '.join(failures)} [{figures}]; "
                    f"100 % is back on {stable}"
                )
            self.log(f"gate at {percent} % passed: {figures}")

    def _check_time(self, percent: int) -> None:
        if self.clock.now() + self.plan.call_limit * 3 + self.plan.gate_limit > self._guard:
            raise OutOfTime(f"too close to the deadline for the {percent} % step and its gate")

    def _check_freeze(self) -> None:
        try:
            reason = freeze_reason(self.objects, self.plan.service)
        except StorageError as error:
            raise RolloutBlocked(f"cannot tell whether rollouts are frozen: {error}") from None
        if reason is not None:
            raise RolloutBlocked(f"a freeze was set during the rollout: {reason}")

    def _shift(self, split: dict[str, int], tags: Mapping[str, str]) -> datetime:
        self.log(f"traffic -> {describe_split(split)}")
        self._write(split, {**tags, self.plan.candidate_tag: self.plan.candidate_revision})
        return self.clock.now()

    def _write(
        self, split: dict[str, int], tags: Mapping[str, str], drop: Sequence[str] = (), failed: str | None = None
    ) -> Service:
        """Set traffic and tags on the service just read, if its split is still the one this rollout set.

        `failed` names a refused candidate: it keeps a failed- tag for inspection only if it is ready, because
        a tag on a revision that never became ready is one Cloud Run cannot apply, and it would block every
        later write."""
        read = self.cloud_run.describe()
        current = read.desired_split()
        # A write that failed may still have been applied (it timed out waiting): that split is this rollout's too.
        if current not in (self._expected, self._attempted):
            raise OperatorIntervened(
                f"traffic is {describe_split(current)}, not the {describe_split(self._expected)} this rollout set: "
                "someone else changed it, so the rollout stops here and leaves traffic as it is"
            )
        kept = {tag: revision for tag, revision in read.tags().items() if tag not in drop}
        if failed is not None and (failed in read.served_tags().values() or failed in read.split()):
            kept[self.plan.failed_tag] = failed
        self._attempted = dict(split)
        service = self._write_on(read, split, {**kept, **tags})
        self._expected = dict(split)
        return service

    def _write_on(self, read: Service, split: Split, tags: Tags) -> Service:
        try:
            written = self.cloud_run.write_traffic(read, split, tags)
        except TrafficConflict as conflict:
            # The write was conditional on `read`: whatever they set is in place, and stays.
            raise OperatorIntervened(f"{conflict}; the rollout stops here and leaves traffic as it is") from None
        if written.complaint:
            self.log(f"the traffic write reported a failure, but the change is in place: {written.complaint}")
        return written.service

    def _gate(self, candidate: str, stable: str, shifted_at: datetime, compare: bool) -> tuple[list[str], str]:
        """Judge the candidate over the window from its shift; against the stable revision only if `compare`."""
        plan = self.plan
        # Windows follow on from one another, so every minute from the first shift on is judged by some gate.
        step_start = align_down(shifted_at, plan.metrics_period)
        start = self._covered_until or step_start
        end, last_end = step_start + plan.dwell, step_start + plan.dwell + plan.max_extra_wait
        give_up = shifted_at + plan.gate_limit
        wake, errors = end + plan.metrics_lag, 0
        while True:
            self._sleep_until(wake, give_up)
            window = Window(start, end)
            try:
                stats = self.metrics.request_stats(candidate, window)
                baseline = self.metrics.request_stats(stable, window)
            except Exception as error:  # noqa: BLE001 (an error is not a verdict: it is retried, then fails)
                errors += 1
                self.log(f"Monitoring error {errors} in a row ({plan.consecutive_error_limit} allowed): {error}")
                if errors > plan.consecutive_error_limit:
                    last = f"{type(error).__name__}: {error}"
                    return [f"metrics: {errors} Monitoring errors in a row, the last: {last}"], "no figures"
                wake = self.clock.now() + plan.poll
                continue
            errors = 0
            self.log(
                f"window {window}: {self._figures(candidate, stats, window)}; {self._figures(stable, baseline, window)}"
            )
            if (periods := window.seconds // plan.metrics_period.seconds) > stats.periods_with_data:
                # Read metrics_lag after the window, past Cloud Monitoring's ingestion delay: a period with no
                # point had no requests (a stall of the synthetic load, say), it is not data still to come.
                self.log(f"window {window}: {periods - stats.periods_with_data} of {periods} periods had no requests")
            if stats.total >= plan.thresholds.min_requests or end >= last_end:
                self._covered_until = end
                # With all traffic on the candidate the stable revision serves the synthetic load alone: no yardstick.
                yardstick = baseline if compare else None
                return judge(stats, yardstick, plan.thresholds), f"candidate {stats}; stable {baseline}"
            end = min(end + plan.poll, last_end)
            wake = end + plan.metrics_lag

    def _figures(self, revision: str, stats: RequestStats, window: Window) -> str:
        synthetic = self.load.sent(revision, window.start, window.end)
        return f"{revision}: {stats} (synthetic {synthetic}, real {max(0, stats.total - synthetic)})"

    def _sleep_until(self, moment: datetime, give_up: datetime) -> None:
        if min(moment, give_up) > self._guard:
            self.clock.sleep_until(self._guard)
            raise OutOfTime(f"the deadline leaves no time to wait until {moment:%H:%M:%S}Z")
        if moment > give_up:
            self.clock.sleep_until(give_up)
            raise OutOfTime(f"the gate could not decide within {self.plan.gate_limit} of its shift")
        self.clock.sleep_until(moment)

    def _roll_back(self, candidate: str, stable: str) -> None:
        def send_back() -> None:
            self._write({stable: 100}, {STABLE_TAG: stable}, drop=[self.plan.candidate_tag], failed=candidate)

        try:
            self._to_the_end(f"sending traffic back to {stable}", send_back)
        except CloudRunError as error:
            by_hand = shlex.join(self.cloud_run.manual_traffic_command({stable: 100}))
            raise RolloutFailed(
                f"ROLLBACK FAILED, traffic may still be {describe_split(self._expected)}: send it back by hand "
                f"with {by_hand} ({error})"
            ) from error
        self._record(phase="rolled back")

    def _drop_candidate(self, candidate: str) -> None:
        """After a refusal before any traffic moved: remove the candidate's tag (see _write on failed- tags)."""
        try:
            self._write(self._expected, {}, drop=[self.plan.candidate_tag], failed=candidate)
        except (CloudRunError, OperatorIntervened) as error:
            self.log(f"could not remove tag {self.plan.candidate_tag} from {candidate}: {error}")

    def _promote(self, candidate: str, stable: str | None) -> None:
        final = self.cloud_run.describe()
        if final.desired_split() != {candidate: 100} or final.split() != {candidate: 100}:
            raise OperatorIntervened(
                f"after the last gate traffic is {describe_split(final.split())} (asked: "
                f"{describe_split(final.desired_split())}), not 100 % on {candidate}: someone changed it; "
                "the rollout leaves it as it is"
            )
        self._record(phase="promoted")
        self._record_release(candidate)
        try:
            self._write({candidate: 100}, {STABLE_TAG: candidate}, drop=[self.plan.candidate_tag])
        except (CloudRunError, OperatorIntervened) as error:
            self.log(f"WARNING: {candidate} serves 100 %, but its tags were not tidied ({error})")
        self.log(f"done: {candidate} serves 100 %" + (f", {stable} is no longer needed" if stable else ""))

    # -- an abandoned rollout ----------------------------------------------------------------------

    def _finish_abandoned(self, record: Mapping[str, Any]) -> None:
        candidate, stable, tag = record.get("candidate"), record.get("stable"), record.get("candidate_tag")
        step = f" at {record['percent']} %" if record.get("percent") else ""
        self.log(
            f"the lock's holder, {record['holder']}, is gone ({record['why']}): its rollout of {candidate} was "
            f"abandoned ({record.get('phase')}{step})"
        )
        if not candidate:
            return
        service = self.cloud_run.describe()
        split, tags = service.desired_split(), service.tags()
        self._expected = split
        kept = {name: revision for name, revision in tags.items() if name != tag}
        if candidate not in split:
            self._write_on(service, split, kept)
            self.log(f"{candidate} had no traffic: nothing to send back; its tag {tag} is gone")
        elif record.get("phase") == "promoted" or stable is None:
            self._write_on(service, split, {**kept, STABLE_TAG: candidate})
            self.log(f"{candidate} had passed every gate or was a first deploy: kept it, tidied its tags")
        elif set(split) <= {candidate, stable}:
            self._write_on(service, {stable: 100}, {**kept, STABLE_TAG: stable})
            self.log(f"{candidate} was unjudged at {describe_split(split)}: sent 100 % back to {stable}")
        else:
            self.log(f"traffic is {describe_split(split)}, not what that rollout set: left as it is")

    def _record(self, **state: Any) -> None:
        if self._lock is not None and (warning := self._lock.record(**state)):
            self.log(f"WARNING: {warning}")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, moment: datetime) -> None:
        time.sleep(max(0.0, (moment - self.now()).total_seconds()))
