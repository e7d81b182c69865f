"""`python -m deploy`: roll one built image out to Cloud Run through the gated canary (see deploy/rollout.py).

Exit status: 0 the candidate serves 100 %; 1 it was refused (traffic is on the stable revision); 2 the
rollout did not start (freeze, lock, an unsettled or split service, an older commit, bad arguments, a gcloud
configuration it cannot use); 3 an operator changed traffic during the rollout, which stopped without touching it
again; 143 SIGTERM (the build was cancelled or timed out): traffic was sent back to the stable revision and the
lock released.
"""

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

from deploy.builds import GcloudBuilds
from deploy.cloud_run import CloudRunAdmin, CloudRunError, Polling
from deploy.dry_run import dry_run
from deploy.gates import Thresholds
from deploy.gcloud import GcloudError, GcloudRunner
from deploy.google_api import gcloud_config
from deploy.load import SyntheticLoad
from deploy.lock import GcsObjectStore, RolloutBlocked, StorageError
from deploy.metrics import MonitoringMetrics
from deploy.revision import RevisionTemplate
from deploy.rollout import OperatorIntervened, Rollout, RolloutFailed, RolloutPlan, SystemClock, Terminated
from deploy.smoke import run_smoke

REQUIRED = {
    "project": "Google Cloud project id",
    "region": "Cloud Run region",
    "service": "Cloud Run service name",
    "image": "image by digest: REGISTRY/IMAGE@sha256:...",
    "commit": "commit SHA the image was built from",
    "attempt": "what makes this attempt unique, e.g. the Cloud Build BUILD_ID",
    "service-account": "email of the runtime service account the revision runs as",
    "lock-bucket": "bucket that holds the rollout lock and the freeze",
    "bootstrap-revision": "revision Terraform created with a placeholder image; never a stable baseline",
}
# RolloutPlan's durations, given in whole seconds on the command line.
SECONDS = {
    "dwell": "length of each gate's window (whole metrics periods)",
    "metrics_lag": "how long after a window ends it is read",
    "max_extra_wait": "how far a window may grow until the candidate has --min-requests",
    "poll": "step of that growth, and the wait before a Monitoring call is retried",
    "metrics_period": "Cloud Run's metrics sampling period: windows are aligned to it",
    "deadline": "the rollout ends within this, rollback and lock release included (below the build's timeout)",
}
NUMBERS = {
    "consecutive_error_limit": "Monitoring errors in a row a gate tolerates; one more fails it",
    "synthetic_rps": "requests per second of synthetic load on each of the candidate's and stable tag URLs",
}


def percentages(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def timestamp(text: str) -> datetime:
    """RFC 3339 as Cloud Build writes createTime: nanoseconds are cut to microseconds, and a zone is required."""
    head, dot, tail = text.strip().partition(".")
    if dot:
        digits = "".join(character for character in tail if character.isdigit())
        head = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    moment = datetime.fromisoformat(head)
    if moment.tzinfo is None:
        raise ValueError(f"a time zone is required: {text}")
    return moment


def yes_no(text: str) -> bool:
    if text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.splitlines()[0])
    required = cli.add_argument_group("what to roll out, where")
    for name, meaning in REQUIRED.items():
        required.add_argument(f"--{name}", required=True, help=meaning)
    # Every default is RolloutPlan's or Thresholds' own: the tool, its library and the pipeline cannot disagree.
    plan: dict[str, Any] = {item.name: item.default for item in fields(RolloutPlan) if item.default is not MISSING}
    tuning = cli.add_argument_group("traffic steps, gates and time")
    tuning.add_argument("--steps", type=percentages, default=list(plan["steps"]), help="percentages, e.g. 10,50,100")
    for name, meaning in SECONDS.items():
        seconds = int(plan[name].total_seconds())
        tuning.add_argument(f"{option(name)}-seconds", type=int, default=seconds, help=f"{meaning} ({seconds})")
    for name, meaning in NUMBERS.items():
        tuning.add_argument(option(name), type=type(plan[name]), default=plan[name], help=f"{meaning} ({plan[name]})")
    for threshold in fields(Thresholds):
        tuning.add_argument(option(threshold.name), type=type(threshold.default), default=threshold.default)
    order = cli.add_argument_group("order of commits")
    order.add_argument(
        "--source-build-time", type=timestamp, help="createTime of the build that made the image (RFC 3339)"
    )
    order.add_argument(
        "--allow-older", type=yes_no, nargs="?", const=True, default=plan["allow_older"], help="roll back on purpose"
    )
    cli.add_argument(
        "--build-region",
        default="",
        help="region of the Cloud Build build this rollout runs in, whose id is --attempt: a lock whose holder's "
        "build has ended is then taken over at once, not only once it expires",
    )
    cli.add_argument("--dry-run", action="store_true", help="print the gcloud commands of a rollout; change nothing")
    return cli


def plan_from(arguments: argparse.Namespace) -> RolloutPlan:
    if empty := [name for name in REQUIRED if not getattr(arguments, name.replace("-", "_")).strip()]:
        raise ValueError(f"empty --{', --'.join(empty)}: the rollout trigger passes these as substitutions")
    if "@sha256:" not in arguments.image:
        raise ValueError(f"--image must name a digest (…@sha256:…), not a tag: {arguments.image}")
    tuning: dict[str, Any] = {name: timedelta(seconds=getattr(arguments, f"{name}_seconds")) for name in SECONDS}
    tuning |= {name: getattr(arguments, name) for name in NUMBERS}
    return RolloutPlan(
        service=arguments.service,
        image=arguments.image,
        commit=arguments.commit,
        attempt=arguments.attempt,
        service_account=arguments.service_account,
        template=RevisionTemplate.load(),
        bootstrap_revision=arguments.bootstrap_revision,
        source_build_time=arguments.source_build_time,
        allow_older=arguments.allow_older,
        steps=arguments.steps,
        **tuning,
        thresholds=Thresholds(**{item.name: getattr(arguments, item.name) for item in fields(Thresholds)}),
    )


def terminate_once() -> Callable[[int, FrameType | None], None]:
    """A SIGTERM handler that raises Terminated once; later signals wait for the rollback it started."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if not received:
            received.append(signum)
            raise Terminated("SIGTERM")

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        plan = plan_from(arguments)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if arguments.dry_run:
        print("\n".join(dry_run(plan, arguments.project, arguments.region, arguments.lock_bucket)))
        return 0
    signal.signal(signal.SIGTERM, terminate_once())
    clock = SystemClock()
    deadline = clock.now() + plan.deadline
    runner = GcloudRunner(clock.now, deadline, plan.call_limit, {"run deploy": plan.deploy_limit})
    try:
        config = gcloud_config(runner)
        polling = Polling(clock.now, clock.sleep_until, plan.call_limit)
        cloud_run = CloudRunAdmin.from_gcloud_config(
            config, arguments.project, arguments.region, arguments.service, runner, polling=polling, deadline=deadline
        )
        metrics = MonitoringMetrics.from_gcloud_config(
            config, arguments.project, arguments.service, runner, plan.metrics_period, now=clock.now, deadline=deadline
        )
    except (GcloudError, ValueError) as error:
        print(f"ROLLOUT NOT STARTED: cannot use gcloud's configuration: {error}", file=sys.stderr)
        return 2
    rollout = Rollout(
        plan,
        cloud_run,
        metrics,
        GcsObjectStore(arguments.lock_bucket, runner),
        run_smoke,
        SyntheticLoad(plan.synthetic_rps),
        clock,
        log=lambda line: print(line, flush=True),
        builds=GcloudBuilds(arguments.project, arguments.build_region, runner) if arguments.build_region else None,
    )
    outcomes: list[tuple[type[BaseException], int, str]] = [
        (RolloutBlocked, 2, "ROLLOUT NOT STARTED"),
        (OperatorIntervened, 3, "ROLLOUT STOPPED"),
        (Terminated, 143, "ROLLOUT CANCELLED"),
        (RolloutFailed, 1, "ROLLOUT FAILED"),
        (CloudRunError, 1, "ROLLOUT FAILED"),
        (StorageError, 1, "ROLLOUT FAILED"),
    ]
    try:
        rollout.run()
    except (RolloutBlocked, OperatorIntervened, Terminated, RolloutFailed, CloudRunError, StorageError) as ended:
        status, heading = next((code, text) for kind, code, text in outcomes if isinstance(ended, kind))
        print(f"{heading}: {ended}", file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
