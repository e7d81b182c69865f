"""The rollout build's `source` step: it deploys only the attested image of a build that succeeded, was made by
the build trigger, and built the very commit the rollout runs; anything else is refused with what to do.

The step runs as Cloud Build would run it (substitutions applied, bash), against a `gcloud builds describe`
that answers a Build resource (the Cloud Build API's projects.builds) through gcloud's own resource printer,
so the step's --format projection is gcloud's, not ours.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rehearsal.pipeline import substitute
from tests.support.gcloud_help import gcloud, unknown_flags
from tests.support.pipeline import ROLLOUT, load, step, step_gcloud_commands

COMMIT = "c0ffee" + "0" * 34
BUILD_TRIGGER = "0b1d-build-trigger"
IMAGE = "europe-west1-docker.pkg.dev/p/birthday-api/birthday-api"
DIGEST = "sha256:" + "ab" * 32


def source_script() -> str:
    script: str = step(load(ROLLOUT), "source")["args"][-1]
    return script


def succeeded_build(**changes: Any) -> dict[str, Any]:
    """A Build resource as projects.builds.get answers it for a build of the build trigger."""
    build: dict[str, Any] = {
        "id": "b-123",
        "status": "SUCCESS",
        "buildTriggerId": BUILD_TRIGGER,
        "substitutions": {"COMMIT_SHA": COMMIT, "_SERVICE": "birthday-api"},
        "results": {"images": [{"name": f"{IMAGE}:{COMMIT}-b-123", "digest": DIGEST}]},
    }
    build.update(changes)
    return build


FAKE_GCLOUD = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys
    sys.path[:0] = [{lib!r}, {third_party!r}]
    from googlecloudsdk.core.resource import resource_printer

    arguments = sys.argv[1:]
    if arguments[:2] != ["builds", "describe"]:
        sys.exit(f"unexpected gcloud call: {{arguments}}")
    with open(os.environ["FAKE_BUILD"]) as file:
        build = json.load(file)
    if build is None:
        sys.exit("ERROR: (gcloud.builds.describe) NOT_FOUND: Requested entity was not found.")
    with open(os.environ["FAKE_CALLS"], "a") as calls:
        calls.write(json.dumps(arguments) + "\\n")
    projection = next(argument.split("=", 1)[1] for argument in arguments if argument.startswith("--format="))
    resource_printer.Print([build], projection, out=sys.stdout)
    """
)


@pytest.fixture
def fake_gcloud(tmp_path: Path) -> Path:
    sdk = Path(os.path.realpath(gcloud())).parents[1] / "lib"
    script = tmp_path / "bin" / "gcloud"
    script.parent.mkdir()
    script.write_text(FAKE_GCLOUD.format(python=sys.executable, lib=str(sdk), third_party=str(sdk / "third_party")))
    script.chmod(0o755)
    return script


def run_source_step(
    tmp_path: Path, fake_gcloud: Path, build: dict[str, Any] | None, source_build: str = "b-123"
) -> subprocess.CompletedProcess[str]:
    values = {
        "_SOURCE_BUILD": source_build,
        "_SOURCE_STATUS": "SUCCESS",
        "_SOURCE_TRIGGER": BUILD_TRIGGER,
        "_BUILD_TRIGGER_ID": BUILD_TRIGGER,
        "_IMAGE": IMAGE,
        "PROJECT_ID": "p",
        "LOCATION": "europe-west1",
        "COMMIT_SHA": COMMIT,
    }
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (tmp_path / "build.json").write_text(json.dumps(build))
    script = substitute(source_script(), values).replace("/workspace/", f"{workspace}/")
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={
            **os.environ,
            "PATH": f"{fake_gcloud.parent}:{os.environ['PATH']}",
            "FAKE_BUILD": str(tmp_path / "build.json"),
            "FAKE_CALLS": str(tmp_path / "calls"),
        },
    )


def test_a_succeeded_build_of_this_commit_is_deployed_by_its_attested_digest(tmp_path: Path, fake_gcloud: Path) -> None:
    result = run_source_step(tmp_path, fake_gcloud, succeeded_build())
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "workspace" / "image-digest").read_text() == f"{IMAGE}@{DIGEST}\n"
    calls = [json.loads(line) for line in (tmp_path / "calls").read_text().splitlines()]
    assert [call[:3] for call in calls] == [["builds", "describe", "b-123"]]
    assert {"--project=p", "--region=europe-west1"} <= set(calls[0])


@pytest.mark.parametrize(
    ("build", "refusal"),
    [
        (succeeded_build(status="FAILURE"), "is FAILURE, not SUCCESS"),
        (succeeded_build(status="WORKING"), "is WORKING, not SUCCESS"),
        (succeeded_build(buildTriggerId="someone-else"), "was not made by the build trigger"),
        (
            succeeded_build(substitutions={"COMMIT_SHA": "a" * 40}),
            "the main branch has moved on, and the newer commit's own rollout follows",
        ),
        (succeeded_build(results={}), "not an image of"),
        (
            succeeded_build(results={"images": [{"name": "elsewhere/app:x", "digest": DIGEST}]}),
            "not an image of",
        ),
        (None, "NOT_FOUND"),
    ],
    ids=["failed", "unfinished", "other-trigger", "older-commit", "no-image", "other-image", "unknown-build"],
)
def test_anything_else_is_refused_with_the_reason_and_nothing_to_deploy(
    tmp_path: Path, fake_gcloud: Path, build: dict[str, Any] | None, refusal: str
) -> None:
    result = run_source_step(tmp_path, fake_gcloud, build)
    assert result.returncode != 0
    assert refusal in result.stderr
    assert not (tmp_path / "workspace" / "image-digest").exists()


def test_the_manual_trigger_without_a_build_says_how_to_run_it(tmp_path: Path, fake_gcloud: Path) -> None:
    result = run_source_step(tmp_path, fake_gcloud, succeeded_build(), source_build="")
    assert result.returncode != 0
    assert "--substitutions=_SOURCE_BUILD=<build id>" in result.stderr
    assert not (tmp_path / "calls").exists()


def test_the_step_asks_gcloud_only_what_it_has() -> None:
    describes = [command for command in step_gcloud_commands(ROLLOUT) if " builds describe " in command]
    assert describes, "the source step describes the build it deploys"
    for describe in describes:  # the rollout step asks the same build for its createTime
        assert unknown_flags(describe) == ("builds describe", [])
