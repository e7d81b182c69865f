"""The rollout lock and freeze through the gcloud storage adapter and real child processes, against a stand-in for
`gcloud storage` that keeps generations, honours generation preconditions and fails as Cloud Storage can."""

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploy.lock import (
    GcsObjectStore,
    RolloutBlocked,
    RolloutLock,
    StorageError,
    check_not_frozen,
    freeze_name,
    lock_name,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]
SERVICE = "birthday-api"


@pytest.fixture
def bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GcsObjectStore:
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "gcloud"
    fake.write_text(f'#!/bin/sh\ncd {REPO} && exec {sys.executable} -m tests.support.fake_gcloud_storage "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_GCS_ROOT", str(tmp_path / "gcs"))
    return GcsObjectStore("p-birthday-api-rollout")


def fail(monkeypatch: pytest.MonkeyPatch, failures: str) -> None:
    monkeypatch.setenv("FAKE_GCS_FAIL", failures)


def lock(store: GcsObjectStore, holder: str, expires: datetime = NOW + timedelta(hours=1)) -> RolloutLock:
    return RolloutLock(store, SERVICE, holder, expires)


def test_one_lock_at_a_time_and_release_frees_it(bucket: GcsObjectStore) -> None:
    first = lock(bucket, "build one")
    assert first.acquire(NOW) is None
    with pytest.raises(RolloutBlocked, match="locked by build one"):
        lock(bucket, "build two").acquire(NOW)
    assert first.release() == f"lock released for {SERVICE}"
    assert bucket.read(lock_name(SERVICE)) is None
    lock(bucket, "build two").acquire(NOW)


def test_an_expired_lock_is_taken_over_with_what_its_holder_was_doing(bucket: GcsObjectStore) -> None:
    crashed = lock(bucket, "crashed build", expires=NOW - timedelta(minutes=1))
    crashed.acquire(NOW - timedelta(hours=2))
    assert crashed.record(candidate="svc-new", phase="gating", percent=50) is None
    successor = lock(bucket, "next build")
    assert successor.acquire(NOW) == {
        "holder": "crashed build",
        "why": f"its lock expired at {(NOW - timedelta(minutes=1)).isoformat()}",
        "candidate": "svc-new",
        "phase": "gating",
        "percent": 50,
    }
    assert "already gone or taken over" in crashed.release(), "the old holder cannot release the new one"
    held = bucket.read(lock_name(SERVICE))
    assert held is not None
    assert json.loads(held[0])["holder"] == "next build"


def test_a_freeze_object_blocks_and_says_why(bucket: GcsObjectStore) -> None:
    check_not_frozen(bucket, SERVICE)
    assert bucket.create_if_absent(freeze_name(SERVICE), "incident 7\n") is not None
    with pytest.raises(RolloutBlocked, match=r"frozen .*incident 7"):
        check_not_frozen(bucket, SERVICE)


@pytest.mark.parametrize("failure", ["objects describe=403", "objects describe=503", "cat=403"])
def test_only_not_found_means_there_is_no_freeze(
    bucket: GcsObjectStore, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    assert bucket.create_if_absent(freeze_name(SERVICE), "incident 8\n") is not None
    fail(monkeypatch, failure)
    with pytest.raises(RolloutBlocked, match=f"cannot tell whether rollouts of {SERVICE} are frozen.*HTTPError"):
        check_not_frozen(bucket, SERVICE)


def test_creating_an_existing_object_reports_it_instead_of_replacing_it(bucket: GcsObjectStore) -> None:
    generation = bucket.create_if_absent("locks/x.json", "mine")
    assert generation is not None
    assert bucket.create_if_absent("locks/x.json", "theirs") is None
    assert bucket.read("locks/x.json") == ("mine", generation)
    assert bucket.overwrite("locks/x.json", "stale", generation - 1) is None
    newer = bucket.overwrite("locks/x.json", "mine, later", generation)
    assert newer is not None
    assert newer > generation
    assert not bucket.delete("locks/x.json", generation)
    assert bucket.delete("locks/x.json", newer)
    assert not bucket.delete("locks/x.json", newer)


def test_a_release_that_fails_says_so_and_how_to_finish_it(
    bucket: GcsObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = lock(bucket, "build one")
    held.acquire(NOW)
    fail(monkeypatch, "rm=503")
    message = held.release()
    assert message.startswith("LOCK NOT RELEASED: could not delete gs://p-birthday-api-rollout/locks/birthday-api.json")
    assert "gcloud storage rm gs://p-birthday-api-rollout/locks/birthday-api.json --if-generation-match=" in message


@pytest.mark.parametrize("failure", ["cp=403", "objects describe=503"])
def test_storage_that_cannot_answer_is_an_error_not_an_absence(
    bucket: GcsObjectStore, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    fail(monkeypatch, failure)
    with pytest.raises(StorageError, match="HTTPError"):
        bucket.create_if_absent("locks/y.json", "content")
