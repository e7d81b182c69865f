"""The Cloud Build configs as the tests read them, and every gcloud command the rollout build can run."""

import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from deploy.__main__ import parser, plan_from
from deploy.builds import GcloudBuilds
from deploy.cloud_run import Candidate, CloudRunAdmin, Polling
from deploy.dry_run import dry_run
from deploy.gcloud import run_gcloud
from deploy.google_api import GcloudConnection, access_token_command, config_command
from deploy.lock import GcsObjectStore
from deploy.rollout import RolloutPlan
from rehearsal.pipeline import references, substitute

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "cloudbuild.yaml"
ROLLOUT = REPO / "cloudbuild-rollout.yaml"
PULL_REQUEST = REPO / "cloudbuild-pr.yaml"
# Substitutions Cloud Build itself provides to a build started by a trigger.
BUILT_IN = {"PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION", "COMMIT_SHA", "SHORT_SHA", "REVISION_ID"}
BUILT_IN |= {"BRANCH_NAME", "TAG_NAME", "REPO_NAME", "REPO_FULL_NAME", "TRIGGER_NAME", "TRIGGER_BUILD_CONFIG_PATH"}
SOURCE_BUILD_TIME = "2026-11-30T09:00:00.123456789Z"
METHODS = {"GET", "PUT", "POST", "PATCH", "DELETE"}
# `gcloud builds describe`: the source build's createTime, and this build's own start (now) and timeout.
GCLOUD_BUILDS_DESCRIBE = f"""#!/bin/sh
case "$*" in
  *createTime*) echo {SOURCE_BUILD_TIME} ;;
  *startTime,timeout*) printf '%s\\t%s\\n' "$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)" "${{TIMEOUT:-7500s}}" ;;
  *) exit 1 ;;
esac
"""


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def step(document: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(one for one in document["steps"] if one["id"] == step_id)


def rollout_script() -> str:
    script: str = step(load(ROLLOUT), "rollout")["args"][-1]
    return script


def rollout_substitutions() -> tuple[set[str], set[str]]:
    """The substitutions of the rollout's own command line, and those its optional options come from (the list the
    step's loop passes on only when set)."""
    script = rollout_script()
    command = script.partition("python -m deploy")[2]
    optional = script.partition("for option in")[2].partition("; do")[0]
    return {name for name in references(command) if name.startswith("_")}, references(optional)


def pipeline_values(**overrides: str) -> dict[str, str]:
    """Every substitution as the rollout trigger gives it: declared defaults, a value for each one only the trigger
    knows, the built-in ones."""
    declared = load(ROLLOUT)["substitutions"]
    required, _ = rollout_substitutions()
    values = {
        name: value or (f"example-{name.lower()}" if name in required else "") for name, value in declared.items()
    }
    values |= dict.fromkeys(BUILT_IN, "")
    values |= {"PROJECT_ID": "p", "LOCATION": "europe-west1", "COMMIT_SHA": "c" * 40, "BUILD_ID": "b1d2c3d4"}
    values |= {"_IMAGE": "registry/app", "_SOURCE_BUILD": "b-123"}
    return values | overrides


def rollout_arguments(values: Mapping[str, str] | None = None, build_timeout: str = "7500s") -> list[str]:
    """What the rollout step passes to `python -m deploy`: its script, as Cloud Build hands it to bash, run with a
    `uv` that prints its arguments and a `gcloud builds describe` that answers what the step asks of it."""
    with tempfile.TemporaryDirectory() as scratch:
        tools = Path(scratch)
        (tools / "uv").write_text('#!/bin/sh\nfor word in "$@"; do echo "$word"; done\n')
        (tools / "gcloud").write_text(GCLOUD_BUILDS_DESCRIBE)
        for tool in ("uv", "gcloud"):
            (tools / tool).chmod(0o755)
        (tools / "image-digest").write_text("registry/app@sha256:" + "a" * 64)
        script = substitute(rollout_script(), values or pipeline_values()).replace(
            "/workspace/image-digest", str(tools / "image-digest")
        )
        ran = subprocess.run(
            ["bash", "-c", script],
            env={"PATH": f"{tools}:/usr/bin:/bin", "TIMEOUT": build_timeout},
            capture_output=True,
            text=True,
            check=True,
        )
    words = ran.stdout.splitlines()
    return words[words.index("deploy") + 1 :]


def plan_with_pipeline_defaults(**overrides: str) -> RolloutPlan:
    return plan_from(parser().parse_args(rollout_arguments(pipeline_values(**overrides))))


def step_gcloud_commands(path: Path) -> list[str]:
    """Every shell line in a config's steps that runs gcloud, continuation lines joined."""
    commands = []
    for one in load(path)["steps"]:
        script = "\n".join(str(argument) for argument in one.get("args", [])).replace("\\\n", " ")
        commands += [line.strip() for line in script.splitlines() if line.strip().startswith("gcloud ")]
    return commands


def cloud_run_adapter(plan: RolloutPlan) -> CloudRunAdmin:
    """The rollout's Cloud Run adapter as production builds it, for its catalogue of commands and calls only."""
    root = GcloudConnection.from_config({}).regional_root("run", "europe-west1")

    def never_called(method: str, url: str, body: Mapping[str, Any] | None = None, timeout: float = 30) -> Any:
        raise AssertionError(f"{method} {url}: the catalogue is read, never called")

    polling = Polling(lambda: datetime.now(UTC), lambda moment: None, timedelta(0))
    return CloudRunAdmin("p", "europe-west1", plan.service, run_gcloud, api=never_called, root=root, polling=polling)


def rollout_gcloud_commands() -> list[str]:
    """What the rollout build can run: its steps' gcloud commands, and every one `python -m deploy` can issue:
    those a dry run of the real rollout issues, and the catalogue each adapter keeps of the commands it builds."""
    plan = plan_with_pipeline_defaults()
    commands = [line for line in dry_run(plan, "p", "europe-west1", "bucket") if line.startswith("gcloud ")]
    candidate = Candidate(plan.suffix, plan.image, plan.candidate_tag, plan.service_account, plan.template, plan.labels)
    catalogue = [
        *cloud_run_adapter(plan).issued_commands(candidate),
        *GcsObjectStore("bucket").issued_commands(),
        *GcloudBuilds("p", "europe-west1", run_gcloud).issued_commands(),
    ]
    commands += [shlex.join(command) for command in [*catalogue, access_token_command(), config_command()]]
    return commands + step_gcloud_commands(ROLLOUT)


def rollout_api_calls() -> list[tuple[str, str]]:
    """The Admin API calls `python -m deploy` can make, as method and URL: those a dry run of the real rollout
    makes, and the Cloud Run adapter's catalogue."""
    plan = plan_with_pipeline_defaults()
    made = [line.split(" ", 1) for line in dry_run(plan, "p", "europe-west1", "bucket")]
    calls = [(method, url) for method, url in (pair for pair in made if len(pair) == 2) if method in METHODS]
    return calls + cloud_run_adapter(plan).issued_requests()
