"""The Cloud Build configs: well-formed, consistent with the Terraform trigger and with the rollout tool, and every
gcloud command the pipeline and the rollout can issue exists in the installed gcloud with the flags used."""

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.__main__ import REQUIRED, parser, plan_from
from deploy.cloud_run import Candidate, GcloudCloudRun
from deploy.dry_run import dry_run
from deploy.gcloud import run_gcloud
from deploy.lock import GcsObjectStore
from deploy.metrics import access_token_command, config_command
from deploy.rollout import RolloutPlan
from tests.support.gcloud_help import unknown_flags
from tests.support.terraform import STACK
from tests.support.terraform import load as load_module

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(REPO.glob("cloudbuild*.yaml"))
PULL_REQUEST = REPO / "cloudbuild-pr.yaml"
# Substitutions Cloud Build itself provides to a build started by a repository trigger.
BUILT_IN = {"PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION", "COMMIT_SHA", "SHORT_SHA", "REVISION_ID"}
BUILT_IN |= {"BRANCH_NAME", "TAG_NAME", "REPO_NAME", "REPO_FULL_NAME", "TRIGGER_NAME", "TRIGGER_BUILD_CONFIG_PATH"}
# What a build spends on its other steps, at most, before the rollout starts: in the rollout's build that is the
# toolbox and the digest; until the pipeline is split, also the checks, the image and its push.
OTHER_STEPS = timedelta(minutes=30)
MARGIN = timedelta(minutes=10)
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


def step(document: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(one for one in document["steps"] if one["id"] == step_id)


def rollout_config() -> tuple[Path, dict[str, Any]]:
    """The build whose step runs `python -m deploy`, whichever file it is in, and that step."""
    for path in CONFIGS:
        for one in load(path)["steps"]:
            if "python -m deploy" in " ".join(strings(one)):
                return path, one
    raise AssertionError("no cloudbuild*.yaml runs python -m deploy")


def rollout_script() -> str:
    return str(rollout_config()[1]["args"][-1])


def substituted(script: str, values: dict[str, str]) -> str:
    """The script as Cloud Build hands it to bash: substitutions replaced, $$ unescaped."""
    return REFERENCE.sub(lambda found: values[found.group(1) or found.group(2)], script).replace("$$", "$")


def rollout_arguments(values: dict[str, str], tmp_path: Path) -> list[str]:
    """What the rollout step passes to `python -m deploy`: its script run by bash, with a `uv` that only prints."""
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    uv = tools / "uv"
    uv.write_text('#!/bin/sh\nfor word in "$@"; do echo "$word"; done\n')
    uv.chmod(0o755)
    digest = tmp_path / "image-digest"
    digest.write_text("registry/app@sha256:" + "a" * 64)
    script = substituted(rollout_script(), values).replace("/workspace/image-digest", str(digest))
    ran = subprocess.run(
        ["bash", "-c", script], env={"PATH": f"{tools}:/usr/bin:/bin"}, capture_output=True, text=True, check=True
    )
    words = ran.stdout.splitlines()
    return words[words.index("deploy") + 1 :]


def substitutions_of_rollout() -> tuple[set[str], set[str]]:
    """The substitutions the rollout command line needs, and those its tuning options come from."""
    options, _, command = rollout_script().partition("python -m deploy")
    return {name for name in references([command]) if name.startswith("_")}, {
        name for name in references([options]) if name.startswith("_")
    }


def pipeline_values(**overrides: str) -> dict[str, str]:
    """Every substitution as the rollout's trigger would give it: the declared defaults, a value for the ones only
    the trigger knows, and the built-in ones."""
    declared = load(rollout_config()[0]).get("substitutions", {})
    required, _ = substitutions_of_rollout()
    values = {
        name: value or (f"example-{name.lower()}" if name in required else "") for name, value in declared.items()
    }
    values |= dict.fromkeys(BUILT_IN, "")
    values |= {"PROJECT_ID": "p", "COMMIT_SHA": "c" * 40, "BUILD_ID": "b1d2c3d4", "_IMAGE": "registry/app"}
    return values | overrides


def plan_with_pipeline_defaults(tmp_path: Path, **overrides: str) -> RolloutPlan:
    return plan_from(parser().parse_args(rollout_arguments(pipeline_values(**overrides), tmp_path)))


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


def test_the_trigger_passes_what_the_pipeline_needs_from_it() -> None:
    declared = load(rollout_config()[0])["substitutions"]
    passed = dict(load_module(STACK).locals["deploy_substitutions"])
    assert set(passed) <= set(declared), "the trigger passes a substitution the pipeline does not declare"
    required, _ = substitutions_of_rollout()
    assert {name for name in required if declared.get(name) == ""} <= set(passed), "only the trigger knows these"


def test_the_pull_request_pipeline_runs_the_checks_and_deploys_nothing() -> None:
    document = load(PULL_REQUEST)
    assert "images" not in document
    text = PULL_REQUEST.read_text()
    for forbidden in ("docker push", "python -m deploy", "gcloud run", "update-traffic"):
        assert forbidden not in text


# -- 1. a re-run of the same commit reaches the rollout ----------------------------------------------------


def test_every_build_pushes_an_image_tag_no_other_build_can_have() -> None:
    # The repository's tags are immutable: a tag named after the commit alone could be pushed only once.
    pushed = [(path, image) for path in CONFIGS for image in load(path).get("images", [])]
    assert pushed, "some build records its image"
    for path, image in pushed:
        tag = image.rsplit(":", 1)[1]
        assert references([tag]) >= {"BUILD_ID"}, f"{path.name}: {image}"
        assert "@sha256:" not in image


def test_the_rollout_deploys_by_digest() -> None:
    assert '--image="$$(cat /workspace/image-digest)"' in rollout_script()


# -- the rollout step ------------------------------------------------------------------------------------


def test_the_rollout_step_passes_every_required_option_and_only_options_the_tool_has(tmp_path: Path) -> None:
    options = {action.option_strings[0]: action for action in parser()._actions if action.option_strings}
    passed = {argument.split("=", 1)[0] for argument in rollout_arguments(pipeline_values(), tmp_path)}
    assert passed <= set(options)
    assert {f"--{name}" for name in REQUIRED} <= passed


def test_an_option_is_passed_only_when_its_substitution_is_set(tmp_path: Path) -> None:
    unset = rollout_arguments(pipeline_values(), tmp_path)
    assert not [argument for argument in unset if argument.endswith("=")], "no empty option"
    assert {argument.split("=")[0] for argument in unset} == {f"--{name}" for name in REQUIRED}
    tuned = rollout_arguments(pipeline_values(_DWELL_SECONDS="120", _ALLOW_OLDER="true"), tmp_path)
    assert set(tuned) - set(unset) == {"--dwell-seconds=120", "--allow-older=true"}


def test_the_pipeline_sets_no_default_of_its_own(tmp_path: Path) -> None:
    declared = load(rollout_config()[0])["substitutions"]
    _, optional = substitutions_of_rollout()
    assert optional
    assert {declared[name] for name in optional} == {""}, "the defaults live in RolloutPlan and Thresholds only"
    assert plan_with_pipeline_defaults(tmp_path, _SOURCE_BUILD_TIME="2026-11-30T09:00:00Z").dwell == RolloutPlan.dwell


def test_the_rollout_installs_the_deploy_group_alone_and_exec_hands_it_sigterm() -> None:
    script = rollout_script()
    assert "exec uv run --locked --only-group=deploy python -m deploy" in script


def third_party_imports() -> set[str]:
    standard = set(sys.stdlib_module_names)
    found = set()
    for module in (REPO / "deploy").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            found |= {name.split(".")[0] for name in names}
    return found - standard - {"deploy"}


def test_the_deploy_group_holds_what_the_rollout_imports_and_nothing_of_the_app() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    group = {re.split(r"[<>=!~ \[]", requirement)[0].lower() for requirement in project["dependency-groups"]["deploy"]}
    assert third_party_imports() == {"yaml"}
    assert group == {"pyyaml"}
    app = {re.split(r"[<>=!~ \[]", requirement)[0].lower() for requirement in project["project"]["dependencies"]}
    assert not group & app


def test_the_rollout_runs_with_the_deploy_group_alone(tmp_path: Path) -> None:
    """A fresh environment of the deploy group only, as the rollout step makes it: the dry run runs in it."""
    for name in ("pyproject.toml", "uv.lock", ".python-version"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    arguments = [f"--{name}=x" for name in REQUIRED if name not in ("image", "commit")]
    arguments += ["--image=r/a@sha256:ab", "--commit=0123456789", "--source-build-time=2026-11-30T09:00:00Z"]
    uv = shutil.which("uv") or "uv"
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    ran = subprocess.run(
        [uv, "run", "--locked", "--only-group=deploy", "python", "-m", "deploy", *arguments, "--dry-run"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert "gcloud run deploy x " in ran.stdout
    installed = {
        path.name.split("-")[0].lower() for path in (tmp_path / ".venv").glob("lib/*/site-packages/*.dist-info")
    }
    assert installed == {"pyyaml"}


# -- 8. the worst case fits the build ---------------------------------------------------------------------


def test_the_worst_case_fits_the_builds_timeout_with_ten_minutes_to_spare(tmp_path: Path) -> None:
    path, _ = rollout_config()
    plan = plan_with_pipeline_defaults(tmp_path, _SOURCE_BUILD_TIME="2026-11-30T09:00:00Z")
    timeout = timedelta(seconds=int(load(path)["timeout"].removesuffix("s")))
    # The rollout ends within its deadline however slow Cloud Run is (it stops and sends traffic back before
    # it), and its slowest regular run, every wait at its longest, fits inside that deadline.
    assert plan.worst_case() <= plan.deadline
    assert OTHER_STEPS + plan.deadline + MARGIN <= timeout, f"{OTHER_STEPS + plan.deadline} + {MARGIN} > {timeout}"
    slowest_step = plan.gate_limit + plan.call_limit * 3
    assert slowest_step * len(plan.steps) < plan.deadline


# -- every gcloud command, for the checks here and for the deployer's custom role (issue 10) ----------------


def gcloud_commands(tmp_path: Path) -> list[str]:
    """Every gcloud command the rollout can issue, and every one the pipeline's own steps run."""
    plan = plan_with_pipeline_defaults(tmp_path, _SOURCE_BUILD_TIME="2026-11-30T09:00:00Z")
    transcript = dry_run(plan, "p", "europe-west1", "bucket")
    issued = [line for line in transcript if line.startswith("gcloud ")]
    cloud_run = GcloudCloudRun("p", "europe-west1", plan.service, run_gcloud)
    candidate = Candidate(plan.suffix, plan.image, plan.candidate_tag, plan.service_account, plan.template, plan.labels)
    catalogue = [*cloud_run.issued_commands(candidate), *GcsObjectStore("bucket").issued_commands()]
    catalogue += [access_token_command(), config_command()]
    issued += [shlex.join(command) for command in catalogue]
    steps = [text for path in CONFIGS for text in strings(load(path)["steps"])]
    issued += [line.strip() for text in steps for line in text.splitlines() if line.strip().startswith("gcloud ")]
    return issued


def test_every_gcloud_command_exists_with_its_flags(tmp_path: Path) -> None:
    used = set()
    for command in gcloud_commands(tmp_path):
        path, unknown = unknown_flags(command)
        used.add(path)
        assert unknown == [], f"gcloud {path} has no {unknown}"
    assert used == {
        "run deploy",
        "run services describe",
        "run services replace",
        "run revisions describe",
        "storage cp",
        "storage rm",
        "storage cat",
        "storage objects describe",
        "auth print-access-token",
        "config list",
    }, "the rollout calls only these, each scoped to the one service or bucket"


def test_the_dry_run_issues_what_the_adapters_catalogue(tmp_path: Path) -> None:
    plan = plan_with_pipeline_defaults(tmp_path, _SOURCE_BUILD_TIME="2026-11-30T09:00:00Z")
    words = {
        " ".join(line.split()[:4]) for line in dry_run(plan, "p", "europe-west1", "b") if line.startswith("gcloud")
    }
    assert words >= {
        "gcloud run services describe",
        "gcloud run services replace",
        "gcloud run revisions describe",
        "gcloud storage cp -",
        "gcloud storage rm gs://b/locks/birthday-api.json",
    }
