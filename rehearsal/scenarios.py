"""The scenarios of the rehearsal (issue 12's twelve, and 8b), each in a project of its own on the shared stand-ins.

Each returns what happened: the rollouts it ran, the one whose outcome it is about, the client load's
records and the router's. The expectations are the tests' (tests/test_rehearsal_scenarios.py); nothing here
decides whether the rollout did right.
"""

import contextlib
import signal
import subprocess
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rehearsal.api import Json
from rehearsal.faults import Behaviour
from rehearsal.harness import Rehearsal, Rollout, Stage, commits, percentile
from rehearsal.pipeline import Running

WARM_UP_SECONDS = 3
"""Client load before the first rollout: the baseline p99, and every revision warm."""
COOL_DOWN_SECONDS = 2
"""Client load after the last rollout: what clients see once it is over."""
SHORT_ROLLOUT = {"_TRAFFIC_STEPS": "100"}
"""For the rollouts a scenario needs only as a setting (a re-run, the newer of two commits): one step."""
SMOKE_REQUESTS = 10
"""More than the smoke test sends (deploy/smoke.py: five checks, readiness retried while it starts)."""
QUIET_SYNTHETIC_RPS = "8"
"""Rates are not compressed: this lets a five-second window hold the 30 requests a gate needs (2 rps would not)."""
TERMINATION_GRACE_SECONDS = 10
"""A cancelled build's step gets SIGTERM in its main process, then SIGKILL this long after (docker stop's)."""


@dataclass
class Result:
    name: str
    stage: Stage
    subject: Rollout | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    report: Json = field(default_factory=dict)
    error: str | None = None
    """A failure of the rehearsal itself (not of the rollout), with its traceback."""


Scenario = Callable[[Stage, Result], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[name] = function
        return function

    return register


def candidate_has_share(stage: Stage, rollout_number: int, percent: int | None = None) -> Callable[[], bool]:
    """True once the rollout's candidate serves a share (exactly `percent`, when given) of the service URL."""

    def check() -> bool:
        if len(stage.rollouts) < rollout_number:
            return False
        image = stage.rollouts[rollout_number - 1].image
        shares = stage.traffic()
        return any(
            share and (percent is None or share == percent) and stage.image_of(revision) == image
            for revision, share in shares.items()
        )

    return check


@scenario("first-deploy")
def first_deploy(stage: Stage, result: Result) -> None:
    """1. From Terraform's placeholder revision, the first release gets 100 %."""
    (newest,) = commits(1)
    stage.terraform()
    stage.start_load()
    stage.pause(WARM_UP_SECONDS)
    result.subject = stage.rollout(stage.release("first"), newest)


@scenario("good-release")
def good_release(stage: Stage, result: Result) -> None:
    """2. A good release goes through every step, with client p99 before and during the rollout."""
    newer, older = commits(2)
    stable_under_load(stage, result, older)
    rollout = result.subject = stage.rollout(stage.release("candidate"), newer)
    records = [one for one in stage.client_records() if one.get("method") and one.get("status")]
    result.facts["client_p99_ms_before"] = percentile(
        [one["latency_ms"] for one in records if one["t"] < rollout.started], 0.99
    )
    result.facts["client_p99_ms_during"] = percentile(
        [one["latency_ms"] for one in records if rollout.started <= one["t"] <= rollout.ended], 0.99
    )


def stable_under_load(stage: Stage, result: Result, commit: str, *, load: bool = True) -> str:
    """What most scenarios start from: a release of `commit` serving all traffic, clients on it, warmed up."""
    stage.terraform()
    stable = result.facts["stable"] = stage.serving_already(stage.release("stable"), commit)
    if load:
        stage.start_load()
        stage.pause(WARM_UP_SECONDS)
    return stable


def bad_release(stage: Stage, result: Result, behaviour: Behaviour) -> None:
    newer, older = commits(2)
    stable_under_load(stage, result, older)
    result.subject = stage.rollout(stage.release("bad", behaviour), newer)


@scenario("errors-20-percent")
def errors_release(stage: Stage, result: Result) -> None:
    """3. A release that answers 5xx on 20 % of its requests, once past the few of the smoke test."""
    bad_release(stage, result, Behaviour(server_error_share=0.2, errors_after_requests=SMOKE_REQUESTS))


@scenario("three-times-slower")
def slow_release(stage: Stage, result: Result) -> None:
    """4. A release three times slower than stable."""
    bad_release(stage, result, Behaviour(slowdown=3))


@scenario("startup-probe-fails")
def startup_probe_fails(stage: Stage, result: Result) -> None:
    """5. A release whose startup probe fails never serves; the next good release then ships."""
    newest, middle, oldest = commits(3)
    stable_under_load(stage, result, oldest)
    result.subject = stage.rollout(stage.release("never-ready", Behaviour(startup_probe_fails=True)), middle)
    result.facts["next"] = stage.rollout(stage.release("fixed"), newest)


def killed_mid_step(stage: Stage, result: Result, signal_number: int) -> Rollout:
    newer, older = commits(2)
    stable_under_load(stage, result, older)

    def kill(running: Running) -> str:
        time.sleep(1)  # well inside the step's window
        if signal_number == signal.SIGTERM:
            # docker stop: SIGTERM to the container's main process only (the step execs the rollout), then
            # SIGKILL to everything once the grace period is over.
            running.process.send_signal(signal.SIGTERM)
        else:
            running.signal(signal_number)
        if signal_number == signal.SIGTERM:
            with contextlib.suppress(subprocess.TimeoutExpired):
                running.wait(TERMINATION_GRACE_SECONDS)
        running.signal(signal.SIGKILL)
        return signal.Signals(signal_number).name

    killed = stage.rollout_until(stage.release("candidate"), newer, candidate_has_share(stage, 1), kill)
    result.facts["after_kill"] = {"traffic": stage.traffic(), "lock_held": stage.object_exists(stage.lock_object)}
    return killed


@scenario("killed-sigkill")
def killed_by_sigkill(stage: Stage, result: Result) -> None:
    """6. The rollout killed with SIGKILL mid-step; the next rollout repairs and ships."""
    killed = killed_mid_step(stage, result, signal.SIGKILL)
    result.facts["killed"] = killed
    result.subject = stage.rollout(killed.image, killed.commit)


@scenario("cancelled-sigterm")
def cancelled_by_sigterm(stage: Stage, result: Result) -> None:
    """7. The build cancelled with SIGTERM mid-step: traffic back on stable, lock released."""
    result.subject = killed_mid_step(stage, result, signal.SIGTERM)
    result.facts["lock_held"] = stage.object_exists(stage.lock_object)


@scenario("operator-moves-traffic")
def operator_moves_traffic(stage: Stage, result: Result) -> None:
    """8. An operator sends all traffic back to stable during the 50 % step."""
    newer, older = commits(2)
    stable = stable_under_load(stage, result, older)

    def operator(_: Running) -> None:
        moved = stage.gcloud("run", "services", "update-traffic", stage.project.service, f"--to-revisions={stable}=100")
        result.facts["operator_exit_code"] = moved.returncode
        result.facts["operator_set"] = stage.traffic()

    result.subject = stage.rollout_until(stage.release("candidate"), newer, candidate_has_share(stage, 1, 50), operator)


@scenario("operator-races-a-shift")
def operator_races_a_shift(stage: Stage, result: Result) -> None:
    """8b. An operator promotes the candidate by hand between the rollout's read of the service and its next write."""
    newer, older = commits(2)
    stable = stable_under_load(stage, result, older)

    def race(_: Running) -> None:
        candidate = next(revision for revision in stage.traffic() if revision != stable)
        result.facts["operator_set"] = {candidate: 100}
        stage.write_after_next_read({candidate: 100})

    result.subject = stage.rollout_until(stage.release("candidate"), newer, candidate_has_share(stage, 1, 10), race)
    result.facts["operator_wrote"] = stage.cloud.call(lambda: stage.project.id not in stage.cloud.front.after_read)


@scenario("freeze")
def freeze(stage: Stage, result: Result) -> None:
    """9. With a freeze set, the rollout is refused and nothing moves."""
    newer, older = commits(2)
    stable_under_load(stage, result, older)
    result.facts["freeze_exit_code"] = stage.set_freeze("incident 42: rehearsal").returncode
    result.facts["revisions_before"] = stage.revisions()
    result.subject = stage.rollout(stage.release("candidate"), newer)
    result.facts["revisions_after"] = stage.revisions()
    result.facts["lock_held"] = stage.object_exists(stage.lock_object)


@scenario("rerun-same-commit")
def rerun_same_commit(stage: Stage, result: Result) -> None:
    """10. A build refused (by a freeze) is re-run for the same commit once the freeze is lifted, and ships."""
    newer, older = commits(2)
    stable_under_load(stage, result, older)
    stage.set_freeze("release train paused")
    result.facts["first"] = stage.rollout(stage.release("build-1"), newer, **SHORT_ROLLOUT)
    stage.gcloud("storage", "rm", f"gs://{stage.project.lock_bucket}/{stage.freeze_object}")
    result.subject = stage.rollout(stage.release("build-2"), newer, **SHORT_ROLLOUT)


@scenario("older-after-newer")
def older_after_newer(stage: Stage, result: Result) -> None:
    """11. A build of an older commit whose rollout starts after a newer one shipped is refused."""
    newest, middle, oldest = commits(3)
    stable_under_load(stage, result, oldest)
    older = stage.release("older")  # built first: its build's createTime is the earlier one
    newer = stage.release("newer")
    result.facts["newer"] = stage.rollout(newer, newest, **SHORT_ROLLOUT)
    result.subject = stage.rollout(older, middle, **SHORT_ROLLOUT)


@scenario("quiet-service")
def quiet_service(stage: Stage, result: Result) -> None:
    """12. No client at all: only the rollout's own synthetic load can give the gates evidence."""
    newer, older = commits(2)
    stable_under_load(stage, result, older, load=False)
    result.subject = stage.rollout(stage.release("candidate"), newer, _SYNTHETIC_RPS=QUIET_SYNTHETIC_RPS)


def run_one(rehearsal: Rehearsal, name: str) -> Result:
    stage = Stage(rehearsal, name)
    result = Result(name, stage)
    try:
        SCENARIOS[name](stage, result)
        if stage.load_started:
            stage.pause(COOL_DOWN_SECONDS)
    except Exception:  # noqa: BLE001 (a broken scenario is reported with its traceback, the others go on)
        result.error = traceback.format_exc()
    finally:
        stage.close()
    if result.subject is not None:
        result.report = stage.report(
            result.subject, {key: value for key, value in result.facts.items() if _plain(value)}
        )
    else:
        result.report = {"scenario": name, "error": (result.error or "no rollout").splitlines()[-1]}
    return result


def _plain(value: object) -> bool:
    return isinstance(value, (str, int, float, bool, dict, list)) or value is None


def run_all(rehearsal: Rehearsal, names: list[str], parallel: int) -> dict[str, Result]:
    """Every scenario, `parallel` at a time: each in its own project, so they cannot see each other."""
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="scenario") as pool:
        futures = {name: pool.submit(run_one, rehearsal, name) for name in names}
        return {name: future.result() for name, future in futures.items()}
