"""`make run` (dev/run.py): which store it picks, and that one signal stops everything it started."""

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from app.health import LIVENESS_PATH, READINESS_PATH
from dev.emulator import FirestoreEmulator
from dev.network import answers_200, free_port, wait_until
from dev.service import REPOSITORY

pytestmark = pytest.mark.slow


@contextmanager
def make_run(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "dev.run"],
            env={**env, "PORT": str(port)},
            cwd=REPOSITORY,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: answers_200(base_url + LIVENESS_PATH), timeout=90, what="make run serving")
        yield process, base_url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def round_trip(base_url: str) -> None:
    with httpx2.Client(base_url=base_url, timeout=10) as client:
        wait_until(lambda: client.get(READINESS_PATH).status_code == 200, timeout=30, what="readiness")
        assert client.put("/hello/Local", json={"dateOfBirth": "2000-01-01"}).status_code == 204
        assert client.get("/hello/Local").status_code == 200


def test_without_gcloud_it_serves_from_memory_after_a_warning(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path)}  # nothing on PATH: no gcloud, no java
    with make_run(env, tmp_path / "run.log") as (process, base_url):
        round_trip(base_url)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert "WARNING: gcloud or Java is missing" in (tmp_path / "run.log").read_text()


def test_an_emulator_already_running_is_reused(emulator: FirestoreEmulator, tmp_path: Path) -> None:
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": emulator.host, "BIRTHDAY_COLLECTION": "make-run"}
    with make_run(env, tmp_path / "run.log") as (process, base_url):
        round_trip(base_url)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    assert f"Using the Firestore emulator at {emulator.host}" in (tmp_path / "run.log").read_text()
    assert answers_200(f"http://{emulator.host}/"), "an emulator that make run did not start is left running"


def test_it_starts_its_own_emulator_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "FIRESTORE_EMULATOR_HOST"}
    with make_run(env, tmp_path / "run.log") as (process, base_url):
        round_trip(base_url)
        emulator_host = re.search(r"emulator on (127\.0\.0\.1:\d+)", (tmp_path / "run.log").read_text())
        assert emulator_host is not None
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert not answers_200(f"http://{emulator_host[1]}/"), "the emulator make run started is stopped with it"
    assert "Application shutdown complete" in (tmp_path / "run.log").read_text()
