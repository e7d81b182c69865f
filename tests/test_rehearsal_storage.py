"""The lock bucket of the rehearsal: `gcloud storage` against gcp-storage-emulator through the front end, with the
generation preconditions of the Cloud Storage JSON API that the emulator itself does not check."""

import subprocess
import uuid

import pytest

from rehearsal.cloud import Cloud

pytestmark = pytest.mark.slow


def storage(cloud: Cloud, *arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["gcloud", "storage", *arguments],
        env=cloud.gcloud_environment(),
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


@pytest.fixture
def bucket(stand_ins: Cloud) -> str:
    name = f"lock-{uuid.uuid4().hex[:12]}"
    stand_ins.create_bucket(name)
    return name


def generation(cloud: Cloud, url: str) -> str:
    described = storage(cloud, "objects", "describe", url, "--format=value(generation)")
    assert described.returncode == 0, described.stderr
    return described.stdout.strip()


def test_create_only_if_absent_is_412_condition_not_met_the_second_time(stand_ins: Cloud, bucket: str) -> None:
    url = f"gs://{bucket}/locks/birthday-api.json"
    first = storage(stand_ins, "cp", "-", url, "--if-generation-match=0", stdin='{"holder": "one"}')
    assert first.returncode == 0, first.stderr
    second = storage(stand_ins, "cp", "-", url, "--if-generation-match=0", stdin='{"holder": "two"}')
    assert second.returncode == 1
    assert "HTTPError 412" in second.stderr
    assert storage(stand_ins, "cat", url).stdout == '{"holder": "one"}'


def test_a_delete_of_another_generation_is_412_and_of_the_live_one_succeeds(stand_ins: Cloud, bucket: str) -> None:
    url = f"gs://{bucket}/locks/birthday-api.json"
    assert storage(stand_ins, "cp", "-", url, "--if-generation-match=0", stdin="x").returncode == 0
    live = generation(stand_ins, url)
    refused = storage(stand_ins, "rm", url, f"--if-generation-match={int(live) + 1}")
    assert refused.returncode == 1
    assert "412" in refused.stderr
    assert storage(stand_ins, "rm", url, f"--if-generation-match={live}").returncode == 0
    gone = storage(stand_ins, "objects", "describe", url)
    assert gone.returncode == 1
    assert "not found: 404" in gone.stderr


def test_reading_a_generation_reads_that_one_and_no_other(stand_ins: Cloud, bucket: str) -> None:
    url = f"gs://{bucket}/freeze/birthday-api"
    assert storage(stand_ins, "cp", "-", url, stdin="incident 7").returncode == 0
    live = generation(stand_ins, url)
    assert storage(stand_ins, "cat", f"{url}#{live}").stdout == "incident 7"
    assert storage(stand_ins, "cat", f"{url}#{int(live) - 1}").returncode == 1
