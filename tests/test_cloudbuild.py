"""The Cloud Build configs: well-formed, consistent with the Terraform triggers and with the rollout tool, and every
gcloud command the pipeline stands for exists in the installed gcloud.

cloudbuild.yaml builds, tests and hands the image to `images:` (pushed, with provenance and attestation, only once
the build has passed); cloudbuild-rollout.yaml deploys an image of a build that succeeded; cloudbuild-pr.yaml only
checks a pull request.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from deploy.__main__ import REQUIRED, parser, plan_from
from deploy.dry_run import dry_run
from deploy.gates import Thresholds
from deploy.rollout import RolloutPlan
from rehearsal.pipeline import references as text_references
from rehearsal.pipeline import strings
from tests.support.gcloud_help import unknown_flags
from tests.support.pipeline import (
    BUILD,
    PULL_REQUEST,
    ROLLOUT,
    load,
    pipeline_values,
    plan_with_pipeline_defaults,
    rollout_arguments,
    rollout_gcloud_commands,
    rollout_script,
    rollout_substitutions,
    step,
)
from tests.support.terraform import STACK
from tests.support.terraform import load as load_module

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [BUILD, ROLLOUT, PULL_REQUEST]
# Substitutions Cloud Build itself provides to a build started by a repository trigger.
BUILT_IN = {"PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION", "COMMIT_SHA", "SHORT_SHA", "REVISION_ID"}
BUILT_IN |= {"BRANCH_NAME", "TAG_NAME", "REPO_NAME", "REPO_FULL_NAME", "TRIGGER_NAME", "TRIGGER_BUILD_CONFIG_PATH"}
# What the rollout build spends, at most, before `python -m deploy` starts: the toolbox, the source check, uv.
OTHER_STEPS = timedelta(minutes=15)
MARGIN = timedelta(minutes=10)
ANY_DOLLAR = re.compile(r"(?<!\$)(?:\$\$)*\$(?!\$)(.?)")


def references(texts: list[str]) -> set[str]:
    return {name for text in texts for name in text_references(text)}


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
        # The manual rollout trigger gets the build to deploy from the operator; the message bindings are optional,
        # and so is every tuning option of the rollout (empty: the tool's own default).
        (
            ROLLOUT,
            "rollout_substitutions",
            {"_SOURCE_BUILD", "_SOURCE_STATUS", "_SOURCE_TRIGGER"} | rollout_substitutions()[1],
        ),
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


# -- the rollout step ------------------------------------------------------------------------------------


def test_the_rollout_step_passes_every_required_option_and_only_options_the_tool_has() -> None:
    options = {action.option_strings[0]: action for action in parser()._actions if action.option_strings}
    passed = {argument.split("=", 1)[0] for argument in rollout_arguments()}
    assert passed <= set(options)
    always = {"--source-build-time", "--deadline-seconds", "--build-region"}
    assert {f"--{name}" for name in REQUIRED} | always <= passed


def test_an_option_is_passed_only_when_its_substitution_is_set() -> None:
    unset = rollout_arguments()
    assert not [argument for argument in unset if argument.endswith("=")], "no empty option"
    assert {argument.split("=")[0] for argument in unset} == {f"--{name}" for name in REQUIRED} | {
        "--source-build-time",
        "--deadline-seconds",
        "--build-region",
    }
    tuned = rollout_arguments(pipeline_values(_DWELL_SECONDS="120", _ALLOW_OLDER="true"))
    assert set(tuned) - set(unset) == {"--dwell-seconds=120", "--allow-older=true"}


def test_the_pipeline_sets_no_default_of_its_own() -> None:
    declared = load(ROLLOUT)["substitutions"]
    _, optional = rollout_substitutions()
    assert len(optional) == 13
    assert {declared[name] for name in optional} == {""}, "the defaults live in RolloutPlan and Thresholds only"
    plan = plan_with_pipeline_defaults()
    assert (plan.dwell, list(plan.steps)) == (RolloutPlan.dwell, list(RolloutPlan.steps))
    assert plan.thresholds == Thresholds()


def test_the_source_builds_creation_time_orders_the_commits() -> None:
    plan = plan_with_pipeline_defaults()
    assert plan.source_build_time is not None
    assert plan.source_build_time.isoformat() == "2026-11-30T09:00:00.123456+00:00"


def test_the_rollout_installs_the_deploy_group_alone_and_exec_hands_it_sigterm() -> None:
    assert "exec uv run --locked --only-group=deploy python -m deploy" in rollout_script()


def third_party_imports() -> set[str]:
    found = set()
    for module in (REPO / "deploy").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            found |= {name.split(".")[0] for name in names}
    return found - set(sys.stdlib_module_names) - {"deploy"}


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~ \[]", requirement)[0].lower() for requirement in requirements}


def test_the_deploy_group_holds_what_the_rollout_imports_and_nothing_of_the_app() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    group = requirement_names(project["dependency-groups"]["deploy"])
    assert third_party_imports() == {"yaml"}
    assert group == {"pyyaml"}
    assert not group & requirement_names(project["project"]["dependencies"])


def test_the_rollout_runs_with_the_deploy_group_alone(tmp_path: Path) -> None:
    """A fresh environment of the deploy group only, as the rollout step makes it: the dry run runs in it."""
    for name in ("pyproject.toml", "uv.lock", ".python-version"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    arguments = [f"--{name}=x" for name in REQUIRED if name not in ("image", "commit")]
    arguments += ["--image=r/a@sha256:ab", "--commit=0123456789", "--source-build-time=2026-11-30T09:00:00Z"]
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    ran = subprocess.run(
        [
            shutil.which("uv") or "uv",
            "run",
            "--locked",
            "--only-group=deploy",
            "python",
            "-m",
            "deploy",
            *arguments,
            "--dry-run",
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert "gcloud run deploy x " in ran.stdout
    installed = {path.name.split("-")[0].lower() for path in tmp_path.glob(".venv/lib/*/site-packages/*.dist-info")}
    assert installed == {"pyyaml"}


# -- the worst case fits the rollout build ------------------------------------------------------------------


def test_the_worst_case_fits_the_rollout_builds_timeout_with_ten_minutes_to_spare() -> None:
    timeout = timedelta(seconds=int(load(ROLLOUT)["timeout"].removesuffix("s")))
    plan = plan_with_pipeline_defaults()
    # The step gives the rollout this build's timeout less what has passed and 10 minutes; the rollout ends by
    # then however slow Cloud Run is (it stops, sends traffic back and releases the lock before it), and its
    # slowest regular run, every wait and call at its limit, fits even if the steps before took their longest.
    assert timeout - MARGIN - timedelta(seconds=2) <= plan.deadline <= timeout - MARGIN, "the build started just now"
    assert plan.worst_case() <= timeout - OTHER_STEPS - MARGIN, f"{plan.worst_case()} + {OTHER_STEPS} + {MARGIN}"


def test_a_rollout_build_without_the_time_for_its_worst_case_does_not_start() -> None:
    arguments = rollout_arguments(build_timeout="3600s")
    assert "--deadline-seconds=3000" in arguments
    with pytest.raises(ValueError, match="beyond the 0:50:00 deadline"):
        plan_from(parser().parse_args(arguments))


# -- every gcloud command, checked here and mapped to permissions in test_deployer_permissions.py -----------


def test_every_gcloud_command_the_rollout_build_runs_exists_with_its_flags() -> None:
    used = set()
    for command in rollout_gcloud_commands():
        path, unknown = unknown_flags(command)
        used.add(path)
        assert unknown == [], f"gcloud {path} has no {unknown}"
    assert used == {
        "builds describe",
        "run deploy",
        "storage cp",
        "storage rm",
        "storage cat",
        "storage objects describe",
        "auth print-access-token",
        "config list",
    }, "the rollout calls only these, each scoped to the one service, bucket or build"


def test_the_dry_run_issues_what_the_adapters_catalogue() -> None:
    service = "https://europe-west1-run.googleapis.com/apis/serving.knative.dev/v1/namespaces/p/services/birthday-api"
    words = {
        " ".join(line.split()[:4])
        for line in dry_run(plan_with_pipeline_defaults(), "p", "europe-west1", "b")
        if line.startswith(("gcloud", "GET", "PUT"))
    }
    assert words >= {
        f"GET {service}",
        f"PUT {service}",
        "gcloud run deploy birthday-api",
        "gcloud storage cp -",
        "gcloud storage objects describe",
        "gcloud storage cat 'gs://b/releases/birthday-api.json#1'",
        "gcloud storage rm gs://b/locks/birthday-api.json",
    }
