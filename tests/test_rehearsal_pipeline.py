"""How the rehearsal runs the rollout: the step found in whichever Cloud Build config holds it, Cloud Build's
substitutions applied, /workspace mapped, uv's `run` in the synced environment, time compressed."""

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from rehearsal.pipeline import (
    PipelineError,
    compressed,
    find_rollout_step,
    resolve,
    start,
    substitute,
    tool_time_defaults,
    workspace,
)
from rehearsal.uv_run import EXTRA_OPTIONS, command_of


def config(directory: Path, name: str, steps: Sequence[Mapping[str, object]], **more: object) -> None:
    (directory / name).write_text(yaml.safe_dump({"steps": steps, **more}))


def test_the_step_is_found_in_whichever_config_holds_it(tmp_path: Path) -> None:
    rollout = {"id": "rollout", "name": "toolbox", "entrypoint": "bash", "args": ["-c", "uv run python -m deploy --x"]}
    config(tmp_path, "cloudbuild.yaml", [{"id": "build", "name": "docker", "args": ["build", "."]}])
    config(tmp_path, "cloudbuild-rollout.yaml", [rollout], substitutions={"_A": "1"})
    found = find_rollout_step(tmp_path)
    assert found.config.name == "cloudbuild-rollout.yaml"
    assert found.step["id"] == "rollout"
    assert found.defaults == {"_A": "1"}
    config(tmp_path, "cloudbuild.yaml", [rollout])
    with pytest.raises(PipelineError, match="exactly one"):
        find_rollout_step(tmp_path)


def test_the_repositorys_rollout_step_is_found() -> None:
    found = find_rollout_step()
    assert found.config.name.startswith("cloudbuild")
    assert "python -m deploy" in " ".join(found.step["args"])


def test_substitutions_follow_cloud_build() -> None:
    values = {"PROJECT_ID": "p", "_REGION": "europe-west1"}
    assert substitute("$PROJECT_ID ${_REGION}-x $$(cat f) $$HOME", values) == "p europe-west1-x $(cat f) $HOME"
    with pytest.raises(PipelineError, match=r"\$_MISSING has no value"):
        substitute("$_MISSING", values)
    with pytest.raises(PipelineError, match="does not model"):
        substitute("${_REGION:0:6}", values)


def test_defaults_may_refer_to_other_substitutions_and_given_values_win() -> None:
    defaults = {
        "_REGION": "europe-west1",
        "_IMAGE": "${_REGION}-docker.pkg.dev/${PROJECT_ID}/r/s",
        "_DWELL_SECONDS": "300",
    }
    values = resolve(defaults, {"PROJECT_ID": "p", "_DWELL_SECONDS": "10"})
    assert values["_IMAGE"] == "europe-west1-docker.pkg.dev/p/r/s"
    assert values["_DWELL_SECONDS"] == "10"


def test_the_rollouts_time_options_are_compressed_through_the_step_or_added_until_it_passes_them(
    tmp_path: Path,
) -> None:
    script = "uv run python -m deploy --dwell-seconds=$_DWELL_SECONDS --deadline-seconds=$$deadline"
    config(
        tmp_path, "cloudbuild.yaml", [{"id": "rollout", "args": ["-c", script]}], substitutions={"_DWELL_SECONDS": ""}
    )
    defaults = {"--dwell-seconds": 300, "--poll-seconds": 60, "--deadline-seconds": 6000}
    plan = compressed(find_rollout_step(tmp_path), 60, defaults)
    assert plan.substitutions == {"_DWELL_SECONDS": "5"}
    assert plan.extra_options == ["--poll-seconds=1"], "the deadline the step computes itself is left alone"


def test_the_pipelines_rollout_step_passes_every_time_option_so_the_rehearsal_adds_none() -> None:
    plan = compressed(find_rollout_step(), 60, tool_time_defaults())
    assert plan.extra_options == []
    assert {"_DWELL_SECONDS", "_POLL_SECONDS", "_METRICS_PERIOD_SECONDS"} <= set(plan.substitutions)


def test_the_tools_time_options_are_read_from_its_help() -> None:
    defaults = tool_time_defaults()
    assert {"--dwell-seconds", "--metrics-lag-seconds"} <= set(defaults)
    assert all(seconds > 0 for seconds in defaults.values())


def test_the_rehearsals_uv_adds_the_options_the_step_does_not_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXTRA_OPTIONS, "--poll-seconds=1 --dwell-seconds=5")
    assert command_of(["run", "python", "-m", "deploy", "--dwell-seconds=60"]) == [
        sys.executable,
        "-m",
        "deploy",
        "--dwell-seconds=60",
        "--poll-seconds=1",
    ]
    assert command_of(["run", "python", "-m", "deploy.smoke", "URL"]) == [sys.executable, "-m", "deploy.smoke", "URL"]


def test_the_step_runs_as_its_container_would(tmp_path: Path) -> None:
    script = (
        "set -euo pipefail\n"
        "# stands in for: python -m deploy\n"
        "uv run --locked --no-sync python -c 'import os, sys; print(sys.argv[1], os.environ[\"STEP\"], os.getcwd())' "
        '"$$(cat /workspace/digest)" > /workspace/out'
    )
    config(
        tmp_path,
        "cloudbuild.yaml",
        [{"id": "rollout", "name": "toolbox", "entrypoint": "bash", "args": ["-c", script], "env": ["STEP=$_NAME"]}],
        options={"env": ["CACHE=/workspace/.cache"]},
        substitutions={"_NAME": "rollout"},
    )
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "x.py").write_text("python -m deploy")
    step = find_rollout_step(tmp_path)
    directory = workspace(tmp_path / "ws", {"digest": "registry/app@sha256:abc"}, repository=tmp_path)
    running = start(step, resolve(step.defaults, {}), directory, {"PATH": "/usr/bin:/bin"}, tmp_path / "log")
    assert running.wait(60) == 0, running.output()
    assert (directory / "out").read_text().split() == ["registry/app@sha256:abc", "rollout", str(directory)]
    assert (directory / "deploy").is_symlink()


def test_uv_run_runs_its_command_in_this_environment_and_nothing_else() -> None:
    assert command_of(["run", "--locked", "--no-sync", "--group", "deploy", "python", "-m", "deploy"]) == [
        sys.executable,
        "-m",
        "deploy",
    ]
    assert command_of(["run", "--only-group=deploy", "--", "gcloud", "x"]) == ["gcloud", "x"]
    with pytest.raises(SystemExit, match="only `uv run"):
        command_of(["sync", "--locked"])
