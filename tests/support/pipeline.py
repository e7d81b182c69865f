"""The Cloud Build configs as the tests read them, and every gcloud command the rollout build can run."""

import shlex
from pathlib import Path
from typing import Any

import yaml

from deploy.__main__ import dry_run, parser, plan_from
from deploy.cloud_run import GcloudCloudRun
from deploy.lock import GcsObjectStore
from deploy.rollout import RolloutPlan
from tests.support.cloudbuild import REFERENCE

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "cloudbuild.yaml"
ROLLOUT = REPO / "cloudbuild-rollout.yaml"
PULL_REQUEST = REPO / "cloudbuild-pr.yaml"


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def step(document: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(one for one in document["steps"] if one["id"] == step_id)


def rollout_arguments() -> list[str]:
    """The options the rollout step passes to `python -m deploy`, as written in cloudbuild-rollout.yaml."""
    script = step(load(ROLLOUT), "rollout")["args"][-1]
    command = script[script.index("python -m deploy") :].replace("\\\n", " ")
    return shlex.split(command)[3:]


def plan_with_pipeline_defaults() -> RolloutPlan:
    declared = load(ROLLOUT)["substitutions"]
    values = {name: value or f"example-{name.lower()}" for name, value in declared.items()}
    values |= {"PROJECT_ID": "p", "COMMIT_SHA": "c" * 40, "BUILD_ID": "b"}

    def fill(argument: str) -> str:
        argument = argument.replace("$$(cat /workspace/image-digest)", "registry/app@sha256:" + "a" * 64)
        return REFERENCE.sub(lambda found: values[found.group(1) or found.group(2)], argument)

    return plan_from(parser().parse_args([fill(argument) for argument in rollout_arguments()]))


def step_gcloud_commands(path: Path) -> list[str]:
    """Every shell line in a config's steps that runs gcloud, continuation lines joined."""
    commands = []
    for one in load(path)["steps"]:
        script = "\n".join(str(argument) for argument in one.get("args", [])).replace("\\\n", " ")
        commands += [line.strip() for line in script.splitlines() if line.strip().startswith("gcloud ")]
    return commands


def rollout_gcloud_commands() -> list[str]:
    """What the rollout build can run: its own steps' gcloud commands, and every one `python -m deploy` stands for."""
    plan = plan_with_pipeline_defaults()
    objects = GcsObjectStore("bucket")
    commands = [
        line for line in dry_run(plan, GcloudCloudRun("p", "r", plan.service), objects) if line.startswith("gcloud ")
    ]
    commands += [
        shlex.join(objects.read_command("locks/x.json", 7)),
        "gcloud auth print-access-token",
        "gcloud config list --format=json",
    ]
    return commands + step_gcloud_commands(ROLLOUT)
