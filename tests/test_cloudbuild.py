"""cloudbuild.yaml and cloudbuild-pr.yaml: well-formed, consistent with the Terraform trigger and with the
rollout tool, and every gcloud command the pipeline stands for exists in the installed gcloud."""

import re
import shlex
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.__main__ import dry_run, parser, plan_from
from deploy.cloud_run import GcloudCloudRun
from deploy.lock import GcsObjectStore
from deploy.rollout import RolloutPlan
from tests.support.gcloud_help import unknown_flags
from tests.support.terraform import STACK
from tests.support.terraform import load as load_module

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "cloudbuild.yaml"
PULL_REQUEST = REPO / "cloudbuild-pr.yaml"
# Substitutions Cloud Build itself provides to a build started by a repository trigger.
BUILT_IN = {"PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION", "COMMIT_SHA", "SHORT_SHA", "REVISION_ID"}
BUILT_IN |= {"BRANCH_NAME", "TAG_NAME", "REPO_NAME", "REPO_FULL_NAME", "TRIGGER_NAME", "TRIGGER_BUILD_CONFIG_PATH"}
# What the tests leave to the rollout, at most, besides its own windows: checks, build, push and deploy.
NON_ROLLOUT_BUDGET = timedelta(minutes=30)
# A $ that Cloud Build would substitute: $NAME or ${NAME}. $$ is an escaped dollar, left to the shell.
REFERENCE = re.compile(r"(?<!\$)(?:\$\$)*\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
ANY_DOLLAR = re.compile(r"(?<!\$)(?:\$\$)*\$(?!\$)(.?)")


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings(value)]
    return []


def references(texts: list[str]) -> set[str]:
    return {braced or bare for text in texts for braced, bare in REFERENCE.findall(text)}


def terraform_substitutions() -> dict[str, str]:
    return dict(load_module(STACK).locals["deploy_substitutions"])


def step(document: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(one for one in document["steps"] if one["id"] == step_id)


@pytest.mark.parametrize("path", [MAIN, PULL_REQUEST], ids=lambda path: path.name)
def test_every_step_has_a_unique_id_and_waits_only_for_real_steps(path: Path) -> None:
    steps = load(path)["steps"]
    ids = [one.get("id") for one in steps]
    assert all(ids), "every step has an id"
    assert len(ids) == len(set(ids))
    for one in steps:
        assert set(one.get("waitFor", [])) <= {*ids, "-"}, one["id"]


@pytest.mark.parametrize("path", [MAIN, PULL_REQUEST], ids=lambda path: path.name)
def test_every_substitution_used_is_declared_and_every_declared_one_is_used(path: Path) -> None:
    document = load(path)
    declared = set(document.get("substitutions", {}))
    used_in_steps = references(strings({key: value for key, value in document.items() if key != "substitutions"}))
    used_in_values = references(strings(document.get("substitutions", {})))
    assert used_in_steps | used_in_values <= declared | BUILT_IN, "undeclared substitution"
    assert declared <= used_in_steps | used_in_values, "declared but never used"


@pytest.mark.parametrize("path", [MAIN, PULL_REQUEST], ids=lambda path: path.name)
def test_shell_variables_are_escaped_so_cloud_build_leaves_them_alone(path: Path) -> None:
    for text in strings(load(path)["steps"]):
        for follower in ANY_DOLLAR.findall(text):
            assert follower == "{" or follower.isalpha() or follower == "_", f"unescaped $ in {text!r}"
        names = references([text])
        assert names <= BUILT_IN | set(load(path).get("substitutions", {})), f"{names} in {text!r}"


def test_the_reference_pattern_tells_substitutions_from_escaped_shell() -> None:
    assert references(["$_A ${_B} $$C $${D} $$$_E $PROJECT_ID"]) == {"_A", "_B", "_E", "PROJECT_ID"}
    assert ANY_DOLLAR.findall("$(cat x) $$(cat y)") == ["("]


def test_the_trigger_passes_exactly_what_the_pipeline_declares() -> None:
    declared = load(MAIN)["substitutions"]
    passed = terraform_substitutions()
    assert set(passed) <= set(declared), "the trigger passes a substitution cloudbuild.yaml does not declare"
    without_default = {name for name, value in declared.items() if value == ""}
    assert without_default <= set(passed), "cloudbuild.yaml needs these from the trigger"


def test_the_pull_request_pipeline_runs_the_checks_and_deploys_nothing() -> None:
    document = load(PULL_REQUEST)
    assert "images" not in document
    text = PULL_REQUEST.read_text()
    for forbidden in ("docker push", "python -m deploy", "gcloud run", "update-traffic"):
        assert forbidden not in text
    assert [one["id"] for one in document["steps"]] == [one["id"] for one in load(MAIN)["steps"]][:2]
    assert step(document, "test") == step(load(MAIN), "test")


def test_the_main_pipeline_checks_before_it_pushes_and_pushes_before_it_rolls_out() -> None:
    document = load(MAIN)
    assert step(document, "test")["args"] == ["test-app"]
    assert set(step(document, "push")["waitFor"]) == {"test", "build"}
    assert step(document, "rollout")["waitFor"] == ["push"]


def test_the_image_is_built_by_buildkit_labelled_and_deployed_by_digest() -> None:
    document = load(MAIN)
    build = step(document, "build")
    assert "DOCKER_BUILDKIT=1" in build["env"]
    tag = next(arg.split("=", 1)[1] for arg in build["args"] if arg.startswith("--tag="))
    assert document["images"] == [tag], "the image the build tags is the one recorded with provenance"
    assert any(arg.startswith("--label=org.opencontainers.image.revision=$COMMIT_SHA") for arg in build["args"])
    assert document["options"]["requestedVerifyOption"] == "VERIFIED"
    push_script = step(document, "push")["args"][-1]
    assert "RepoDigests" in push_script
    assert "@sha256:" in push_script
    assert '--image="$$(cat /workspace/image-digest)"' in step(document, "rollout")["args"][-1]


def test_logs_go_to_cloud_logging_only() -> None:
    for path in (MAIN, PULL_REQUEST):
        assert load(path)["options"]["logging"] == "CLOUD_LOGGING_ONLY"


def rollout_arguments() -> list[str]:
    script = step(load(MAIN), "rollout")["args"][-1]
    command = script[script.index("python -m deploy") :].replace("\\\n", " ")
    return shlex.split(command)[3:]


def test_the_rollout_step_passes_every_option_the_tool_requires_and_no_other() -> None:
    options = {action.option_strings[0]: action for action in parser()._actions if action.option_strings}
    passed = {argument.split("=", 1)[0] for argument in rollout_arguments()}
    assert passed <= set(options)
    assert {name for name, action in options.items() if action.required} <= passed


def test_the_pipeline_defaults_are_the_rollout_tool_defaults() -> None:
    declared = load(MAIN)["substitutions"]
    options = {action.option_strings[0]: action for action in parser()._actions if action.option_strings}
    compared = 0
    for argument in rollout_arguments():
        option, _, value = argument.partition("=")
        action = options[option]
        if action.required or not value.startswith("$_"):
            continue
        convert = action.type if callable(action.type) else str
        assert convert(declared[value[1:]]) == action.default, f"{value} and {option} disagree"
        compared += 1
    assert compared == 9


def plan_with_pipeline_defaults() -> RolloutPlan:
    declared = load(MAIN)["substitutions"]

    values = {name: value or f"example-{name.lower()}" for name, value in declared.items()}
    values |= {"PROJECT_ID": "p", "COMMIT_SHA": "c" * 40, "BUILD_ID": "b"}

    def fill(argument: str) -> str:
        argument = argument.replace("$$(cat /workspace/image-digest)", "registry/app@sha256:" + "a" * 64)
        return REFERENCE.sub(lambda found: values[found.group(1) or found.group(2)], argument)

    return plan_from(parser().parse_args([fill(argument) for argument in rollout_arguments()]))


def test_the_build_timeout_covers_the_worst_rollout_and_the_lock_outlives_the_build() -> None:
    plan = plan_with_pipeline_defaults()
    worst_step = plan.metrics_lag + plan.dwell + plan.max_extra_wait + plan.metrics_lag
    timeout = timedelta(seconds=int(load(MAIN)["timeout"].removesuffix("s")))
    assert NON_ROLLOUT_BUDGET + worst_step * len(plan.steps) <= timeout
    assert timeout < plan.lock_ttl, "a live build's lock never expires under it"


def test_every_gcloud_command_the_rollout_stands_for_exists_with_its_flags() -> None:
    plan = plan_with_pipeline_defaults()
    cloud_run = GcloudCloudRun("p", "europe-west1", plan.service)
    objects = GcsObjectStore("bucket")
    commands = [line for line in dry_run(plan, cloud_run, objects) if line.startswith("gcloud ")]
    commands += [shlex.join(objects.read_command("locks/x.json", 7)), "gcloud auth print-access-token"]
    expected = {
        "run deploy",
        "run services describe",
        "run services update-traffic",
        "storage cp",
        "storage rm",
        "storage cat",
        "storage objects describe",
        "auth print-access-token",
    }
    used = set()
    for command in commands:
        path, unknown = unknown_flags(command)
        used.add(path)
        assert unknown == [], f"gcloud {path} has no {unknown}"
    assert used == expected, "the rollout calls only these, each scoped to the one service or bucket"
