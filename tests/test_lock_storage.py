"""The rollout lock and freeze through the gcloud storage adapter, against a stand-in for `gcloud storage`
that keeps generations and honours generation preconditions as Cloud Storage does."""

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploy.lock import GcsObjectStore, RolloutBlocked, RolloutLock, check_not_frozen, freeze_name, lock_name

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


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


def lock(store: GcsObjectStore, holder: str) -> RolloutLock:
    return RolloutLock(store, "birthday-api", holder, timedelta(hours=2))


def test_one_lock_at_a_time_and_release_frees_it(bucket: GcsObjectStore) -> None:
    first = lock(bucket, "build one")
    first.acquire(NOW)
    with pytest.raises(RolloutBlocked, match="locked by build one"):
        lock(bucket, "build two").acquire(NOW)
    first.release()
    assert bucket.read(lock_name("birthday-api")) is None
    lock(bucket, "build two").acquire(NOW)


def test_an_expired_lock_is_taken_over_and_its_old_holder_cannot_release_the_new_one(bucket: GcsObjectStore) -> None:
    crashed = lock(bucket, "crashed build")
    crashed.acquire(NOW - timedelta(hours=3))
    successor = lock(bucket, "next build")
    successor.acquire(NOW)
    crashed.release()  # the old generation is gone: this must not delete the successor's lock
    held = bucket.read(lock_name("birthday-api"))
    assert held is not None
    assert '"holder": "next build"' in held[0]


def test_a_freeze_object_blocks_and_says_why(bucket: GcsObjectStore) -> None:
    check_not_frozen(bucket, "birthday-api")
    assert bucket.create_if_absent(freeze_name("birthday-api"), "incident 7\n") is not None
    with pytest.raises(RolloutBlocked, match=r"frozen .*incident 7"):
        check_not_frozen(bucket, "birthday-api")


def test_creating_an_existing_object_reports_it_instead_of_replacing_it(bucket: GcsObjectStore) -> None:
    generation = bucket.create_if_absent("locks/x.json", "mine")
    assert generation is not None
    assert bucket.create_if_absent("locks/x.json", "theirs") is None
    assert bucket.read("locks/x.json") == ("mine", generation)
    assert not bucket.delete("locks/x.json", generation + 1)
    assert bucket.delete("locks/x.json", generation)
