"""The Cloud Build configs: well-formed, consistent with the Terraform triggers and with the rollout tool, and every
gcloud command the pipeline stands for exists in the installed gcloud.

cloudbuild.yaml builds, tests and hands the image to `images:` (pushed, with provenance and attestation, only once
the build has passed); cloudbuild-rollout.yaml deploys an image of a build that succeeded; cloudbuild-pr.yaml only
checks a pull request.
"""

import re
from datetime import timedelta
from pathlib import Path

import pytest

from deploy.__main__ import parser
from tests.support.cloudbuild import REFERENCE
from tests.support.gcloud_help import unknown_flags
from tests.support.pipeline import (
    BUILD,
    PULL_REQUEST,
    ROLLOUT,
    load,
    plan_with_pipeline_defaults,
    rollout_arguments,
    rollout_gcloud_commands,
    step,
)
from tests.support.terraform import STACK
from tests.support.terraform import load as load_module

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [BUILD, ROLLOUT, PULL_REQUEST]
# Substitutions Cloud Build itself provides to a build started by a repository trigger.
BUILT_IN = {"PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION", "COMMIT_SHA", "SHORT_SHA", "REVISION_ID"}
BUILT_IN |= {"BRANCH_NAME", "TAG_NAME", "REPO_NAME", "REPO_FULL_NAME", "TRIGGER_NAME", "TRIGGER_BUILD_CONFIG_PATH"}
# What the rollout build spends, at most, outside the canary's own windows: the toolbox, the source check, the deploy.
NON_ROLLOUT_BUDGET = timedelta(minutes=15)
ANY_DOLLAR = re.compile(r"(?<!\$)(?:\$\$)*\$(?!\$)(.?)")


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


def terraform_substitutions(name: str) -> dict[str, str]:
    return dict(load_module(STACK).locals[name])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_every_step_has_a_unique_id_and_waits_only_for_real_steps(path: Path) -> None:
    steps = load(path)["steps"]
    ids = [one.get("id") for one in steps]
    assert all(ids), "every step has an id"
    assert len(ids) == len(set(ids))
    for one in steps:
        assert set(one.get("waitFor", [])) <= {*ids, "-"}, one["id"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_every_substitution_used_is_declared_and_every_declared_one_is_used(path: Path) -> None:
    document = load(path)
    declared = set(document.get("substitutions", {}))
    used_in_steps = references(strings({key: value for key, value in document.items() if key != "substitutions"}))
    used_in_values = references(strings(document.get("substitutions", {})))
    assert used_in_steps | used_in_values <= declared | BUILT_IN, "undeclared substitution"
    assert declared <= used_in_steps | used_in_values, "declared but never used"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_shell_variables_are_escaped_so_cloud_build_leaves_them_alone(path: Path) -> None:
    for text in strings(load(path)["steps"]):
        for follower in ANY_DOLLAR.findall(text):
            assert follower == "{" or follower.isalpha() or follower == "_", f"unescaped $ in {text!r}"
        names = references([text])
        assert names <= BUILT_IN | set(load(path).get("substitutions", {})), f"{names} in {text!r}"


def test_the_reference_pattern_tells_substitutions_from_escaped_shell() -> None:
    assert references(["$_A ${_B} $$C $${D} $$$_E $PROJECT_ID"]) == {"_A", "_B", "_E", "PROJECT_ID"}
    assert ANY_DOLLAR.findall("$(cat x) $$(cat y)") == ["("]


@pytest.mark.parametrize(
    ("path", "passed_by_terraform", "passed_at_run_time"),
    [
        (BUILD, "build_substitutions", set()),
        # The manual rollout trigger gets the build to deploy from the operator; the message bindings are optional.
        (ROLLOUT, "rollout_substitutions", {"_SOURCE_BUILD", "_SOURCE_STATUS", "_SOURCE_TRIGGER"}),
    ],
    ids=["build", "rollout"],
)
def test_the_triggers_pass_only_what_a_pipeline_declares_and_all_it_needs(
    path: Path, passed_by_terraform: str, passed_at_run_time: set[str]
) -> None:
    declared = load(path)["substitutions"]
    passed = terraform_substitutions(passed_by_terraform)
    assert set(passed) <= set(declared), f"a trigger passes a substitution {path.name} does not declare"
    without_default = {name for name, value in declared.items() if value == ""}
    assert without_default <= set(passed) | passed_at_run_time, f"{path.name} needs these from its trigger"


def test_the_pull_request_pipeline_runs_the_checks_and_deploys_nothing() -> None:
    document = load(PULL_REQUEST)
    assert "images" not in document
    text = PULL_REQUEST.read_text()
    for forbidden in ("docker push", "python -m deploy", "gcloud run", "update-traffic"):
        assert forbidden not in text
    assert [one["id"] for one in document["steps"]] == [one["id"] for one in load(BUILD)["steps"]][:2]
    assert step(document, "test") == step(load(BUILD), "test")


def test_the_build_checks_builds_and_pushes_only_through_images_with_provenance() -> None:
    document = load(BUILD)
    assert step(document, "test")["args"] == ["test-app"]
    assert "docker push" not in BUILD.read_text(), "a push from a step gets neither provenance nor attestation"
    assert "python -m deploy" not in BUILD.read_text(), "the build deploys nothing"
    assert document["options"]["requestedVerifyOption"] == "VERIFIED"


def test_each_build_tags_its_image_uniquely_so_a_rerun_never_moves_an_immutable_tag() -> None:
    document = load(BUILD)
    build = step(document, "build")
    assert "DOCKER_BUILDKIT=1" in build["env"]
    tag = next(arg.split("=", 1)[1] for arg in build["args"] if arg.startswith("--tag="))
    assert document["images"] == [tag], "the image the build tags is the one recorded with provenance"
    assert "$BUILD_ID" in tag.rpartition(":")[2], "the tag names the build, not only the commit"
    assert any(arg.startswith("--label=org.opencontainers.image.revision=$COMMIT_SHA") for arg in build["args"])


def test_the_rollout_deploys_by_digest_only_after_checking_the_build_it_was_given() -> None:
    document = load(ROLLOUT)
    assert "images" not in document
    assert "docker build --tag=${_IMAGE}" not in ROLLOUT.read_text()
    assert step(document, "rollout")["waitFor"] == ["source"]
    assert '--image="$$(cat /workspace/image-digest)"' in step(document, "rollout")["args"][-1]
    assert "/workspace/image-digest" in step(document, "source")["args"][-1]


def test_logs_go_to_cloud_logging_only() -> None:
    for path in CONFIGS:
        assert load(path)["options"]["logging"] == "CLOUD_LOGGING_ONLY"


def test_the_rollout_step_passes_every_option_the_tool_requires_and_no_other() -> None:
    options = {action.option_strings[0]: action for action in parser()._actions if action.option_strings}
    passed = {argument.split("=", 1)[0] for argument in rollout_arguments()}
    assert passed <= set(options)
    assert {name for name, action in options.items() if action.required} <= passed


def test_the_pipeline_defaults_are_the_rollout_tool_defaults() -> None:
    declared = load(ROLLOUT)["substitutions"]
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


def test_the_build_timeout_covers_the_worst_rollout_and_the_lock_outlives_the_build() -> None:
    plan = plan_with_pipeline_defaults()
    worst_step = plan.metrics_lag + plan.dwell + plan.max_extra_wait + plan.metrics_lag
    timeout = timedelta(seconds=int(load(ROLLOUT)["timeout"].removesuffix("s")))
    assert NON_ROLLOUT_BUDGET + worst_step * len(plan.steps) <= timeout
    assert timeout < plan.lock_ttl, "a live build's lock never expires under it"


def test_every_gcloud_command_the_rollout_build_runs_exists_with_its_flags() -> None:
    expected = {
        "builds describe",
        "run deploy",
        "run services describe",
        "run services update-traffic",
        "storage cp",
        "storage rm",
        "storage cat",
        "storage objects describe",
        "auth print-access-token",
        "config list",
    }
    used = set()
    for command in rollout_gcloud_commands():
        path, unknown = unknown_flags(command)
        used.add(path)
        assert unknown == [], f"gcloud {path} has no {unknown}"
    assert used == expected, "the rollout calls only these, each scoped to the one service, bucket or build"
