"""The smoke suite passes on a healthy service and names what failed on a broken one."""

import subprocess
import uuid
from datetime import date
from pathlib import Path

import pytest

from deploy.smoke import SMOKE_USERNAME, main, request, run_smoke
from dev.emulator import FirestoreEmulator
from dev.service import REPOSITORY, ServiceProcess
from tests.conftest import TEST_PROJECT
from tests.support.blackhole import blackhole

pytestmark = pytest.mark.slow


def test_a_healthy_service_passes_every_check(service: ServiceProcess) -> None:
    report = run_smoke(service.base_url)
    assert report.ok, report.summary()
    assert len(report.passed) == 5
    stored = request(service.base_url, "GET", f"/hello/{SMOKE_USERNAME}")
    assert stored.status == 200


def test_a_greeting_for_another_day_fails_the_round_trip(service: ServiceProcess) -> None:
    # Told that today is in March, the suite expects a count the service (on the real date) cannot give.
    report = run_smoke(service.base_url, today=date(2026, 3, 1))
    assert len(report.failures) == 1
    assert report.failures[0].startswith("PUT then GET returns the stored birthday: GET answered {'message':")
    assert "expected one of ['Hello, Smoketest! Your birthday is in 121 days'" in report.failures[0]


def test_a_service_that_cannot_reach_firestore_fails_with_the_reasons(tmp_path: Path) -> None:
    with blackhole() as storage:
        process = ServiceProcess(
            {
                "FIRESTORE_EMULATOR_HOST": storage,
                "BIRTHDAY_PROJECT_ID": TEST_PROJECT,
                "BIRTHDAY_REQUEST_DEADLINE_SECONDS": "0.5",
                "BIRTHDAY_READINESS_TIMEOUT_SECONDS": "0.5",
            },
            tmp_path / "service.log",
        )
        process.start()
        try:
            report = run_smoke(process.base_url, ready_within=2)
        finally:
            process.kill()
    assert not report.ok
    assert report.passed == ["liveness answers 200", "an invalid date of birth is a 400 problem"]
    assert report.failures[0].startswith(
        "readiness answers 200 within 2 s (Firestore reachable): expected 200, got 503"
    )
    assert report.failures[1].startswith("PUT then GET returns the stored birthday: PUT expected 204, got 503")
    assert "FAILED" in report.summary()


def test_nothing_listening_is_a_failure_not_a_crash() -> None:
    report = run_smoke("http://127.0.0.1:9", timeout=2, ready_within=0)
    assert len(report.failures) == 5
    assert all("URLError" in failure or "ConnectionRefused" in failure for failure in report.failures)


def test_the_command_exits_non_zero_on_failure_and_zero_on_success(
    service: ServiceProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([service.base_url]) == 0
    assert "smoke passed" in capsys.readouterr().out
    assert main(["http://127.0.0.1:9", "--timeout=1", "--ready-within=0"]) == 1
    assert "smoke FAILED" in capsys.readouterr().out


def test_a_base_url_without_a_scheme_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["127.0.0.1:8080", "--ready-within=0"]) == 1
    assert "must start with http:// or https://" in capsys.readouterr().out


def test_make_smoke_runs_the_suite_and_needs_a_url(emulator: FirestoreEmulator, tmp_path: Path) -> None:
    without = subprocess.run(
        ["make", "--no-print-directory", "smoke"], check=False, cwd=REPOSITORY, capture_output=True, text=True
    )
    assert without.returncode == 2
    assert "usage: make smoke BASE_URL=" in without.stderr
    process = ServiceProcess(
        {
            "FIRESTORE_EMULATOR_HOST": emulator.host,
            "BIRTHDAY_PROJECT_ID": TEST_PROJECT,
            "BIRTHDAY_COLLECTION": f"smoke-{uuid.uuid4().hex[:8]}",
        },
        tmp_path / "service.log",
    )
    process.start()
    try:
        ran = subprocess.run(
            ["make", "--no-print-directory", "smoke", f"BASE_URL={process.base_url}"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        process.kill()
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"smoke passed on {process.base_url}: 5 passed, 0 failed" in ran.stdout
