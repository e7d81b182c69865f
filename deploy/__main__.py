"""`python -m deploy`: roll one built image out to Cloud Run through the gated canary (see deploy/rollout.py).

Exit status: 0 the candidate serves 100 %; 1 it was refused (traffic is on the stable revision);
2 the rollout did not start (freeze, lock, a split already in place, bad arguments); 3 an operator
changed traffic during the rollout, which stopped without touching it again.
"""

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import fields
from datetime import timedelta
from typing import Any

from deploy.cloud_run import Candidate, CloudRunError, GcloudCloudRun
from deploy.gates import Thresholds
from deploy.lock import GcsObjectStore, RolloutBlocked, freeze_name, lock_name
from deploy.metrics import REQUEST_COUNT, REQUEST_LATENCIES, MonitoringEndpoint, MonitoringMetrics
from deploy.revision import RevisionTemplate
from deploy.rollout import OperatorIntervened, Rollout, RolloutFailed, RolloutPlan, SystemClock, step_split
from deploy.smoke import run_smoke


def percentages(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


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


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.splitlines()[0])
    required = cli.add_argument_group("what to roll out, where")
    for name, meaning in REQUIRED.items():
        required.add_argument(f"--{name}", required=True, help=meaning)
    # The defaults are RolloutPlan's own, so the tool and its library cannot disagree.
    plan: dict[str, Any] = {field.name: field.default for field in fields(RolloutPlan)}
    steps = cli.add_argument_group("traffic steps and gates")
    steps.add_argument("--steps", type=percentages, default=list(plan["steps"]), help="percentages, e.g. 10,50,100")
    for name, meaning in [
        ("dwell", "length of each gate's window"),
        ("metrics_lag", "Cloud Monitoring's reporting lag"),
        ("max_extra_wait", "extra wait for enough requests"),
    ]:
        seconds = int(plan[name].total_seconds())
        steps.add_argument(f"--{name.replace('_', '-')}-seconds", type=int, default=seconds, help=meaning)
    defaults = Thresholds()
    steps.add_argument("--min-requests", type=int, default=defaults.min_requests)
    steps.add_argument("--max-error-rate", type=float, default=defaults.max_error_rate)
    steps.add_argument("--max-error-rate-increase", type=float, default=defaults.max_error_rate_increase)
    steps.add_argument("--max-p99-ms", type=float, default=defaults.max_p99_ms)
    steps.add_argument("--max-p99-ratio", type=float, default=defaults.max_p99_ratio)
    cli.add_argument("--dry-run", action="store_true", help="print the plan as the gcloud commands it stands for")
    return cli


def plan_from(arguments: argparse.Namespace) -> RolloutPlan:
    if empty := [name for name in REQUIRED if not getattr(arguments, name.replace("-", "_")).strip()]:
        raise ValueError(f"empty --{', --'.join(empty)}: the deploy trigger passes these as substitutions")
    if "@sha256:" not in arguments.image:
        raise ValueError(f"--image must name a digest (…@sha256:…), not a tag: {arguments.image}")
    return RolloutPlan(
        service=arguments.service,
        image=arguments.image,
        commit=arguments.commit,
        attempt=arguments.attempt,
        service_account=arguments.service_account,
        template=RevisionTemplate.load(),
        bootstrap_revision=arguments.bootstrap_revision,
        steps=arguments.steps,
        dwell=timedelta(seconds=arguments.dwell_seconds),
        metrics_lag=timedelta(seconds=arguments.metrics_lag_seconds),
        max_extra_wait=timedelta(seconds=arguments.max_extra_wait_seconds),
        thresholds=Thresholds(
            min_requests=arguments.min_requests,
            max_error_rate=arguments.max_error_rate,
            max_error_rate_increase=arguments.max_error_rate_increase,
            max_p99_ms=arguments.max_p99_ms,
            max_p99_ratio=arguments.max_p99_ratio,
        ),
    )


def dry_run(plan: RolloutPlan, cloud_run: GcloudCloudRun, objects: GcsObjectStore) -> list[str]:
    """The rollout as the commands it stands for; STABLE is the revision serving when it starts."""
    candidate = plan.candidate_revision
    stable = "STABLE"
    lines = [
        "# refuse to start while a freeze exists, then take the lock (fails if another rollout holds it)",
        shlex.join(objects.describe_command(freeze_name(plan.service))),
        shlex.join(objects.create_command(lock_name(plan.service))),
        "# record the stable revision: the one revision with traffic (none, or the bootstrap one: first deploy)",
        shlex.join(cloud_run.describe_command()),
        f"# deploy {candidate} with no traffic",
        shlex.join(
            cloud_run.deploy_command(
                Candidate(plan.suffix, plan.image, plan.candidate_tag, plan.service_account, plan.template)
            )
        ),
        f"# smoke-test the URL of tag {plan.candidate_tag}, read from the service status",
        "python -m deploy.smoke TAG_URL",
    ]
    for percent in plan.steps:
        split = step_split(candidate, stable, percent)
        lines += [
            f"# step {percent} %: re-read the split, stop if it is not the one last set, then shift",
            shlex.join(cloud_run.describe_command()),
            shlex.join(cloud_run.traffic_command(split)),
            f"# gate: wait {plan.metrics_lag + plan.dwell + plan.metrics_lag}, then read {REQUEST_COUNT} and "
            f"{REQUEST_LATENCIES} of {' and '.join(split)} over the {plan.dwell} that start {plan.metrics_lag} "
            f"after the shift, extended by up to {plan.max_extra_wait} until {candidate} has "
            f"{plan.thresholds.min_requests} requests",
        ]
    lines += [
        "# success: drop the candidate tag",
        shlex.join(cloud_run.retag_command({}, [plan.candidate_tag])),
        "# any failure after a shift: all traffic back to the stable revision, candidate tagged failed",
        shlex.join(cloud_run.traffic_command({stable: 100})),
        shlex.join(cloud_run.retag_command({plan.failed_tag: candidate}, [plan.candidate_tag])),
        "# always: release the lock, exactly the generation taken",
        shlex.join(objects.delete_command(lock_name(plan.service), "GENERATION")),
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        plan = plan_from(arguments)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cloud_run = GcloudCloudRun(arguments.project, arguments.region, arguments.service)
    objects = GcsObjectStore(arguments.lock_bucket)
    if arguments.dry_run:
        print("\n".join(dry_run(plan, cloud_run, objects)))
        return 0
    rollout = Rollout(
        plan,
        cloud_run,
        MonitoringMetrics(arguments.project, arguments.service, endpoint=MonitoringEndpoint.from_gcloud()),
        objects,
        run_smoke,
        SystemClock(),
        log=lambda line: print(line, flush=True),
    )
    try:
        rollout.run()
    except (RolloutFailed, CloudRunError) as failure:
        print(f"ROLLOUT FAILED: {failure}", file=sys.stderr)
        return 1
    except RolloutBlocked as blocked:
        print(f"ROLLOUT NOT STARTED: {blocked}", file=sys.stderr)
        return 2
    except OperatorIntervened as stopped:
        print(f"ROLLOUT STOPPED: {stopped}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
